"""PyQt6/pyqtgraph live-plotting window (filled by the GUI issue; PyQt6 is imported lazily)."""
