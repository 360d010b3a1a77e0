"""Real instrument drivers (NI DAQ via nidaqmx, lock-ins via PyMeasure, pot arrays).

Filled by the instrument-layer issue.  Every driver imports its heavy
dependency lazily, so ``import labtrain`` never needs nidaqmx, pyvisa or pyserial.
"""
