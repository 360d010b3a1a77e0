"""Memory estimates checked before anything is built: an experiment whose network, acquisition or data
cannot fit in this machine's memory is a one-line :class:`~labtrain.schema.ConfigError` in ``check``
and ``run`` alike, not a ``MemoryError`` (or a swapping machine) half-way through a run.

The estimates are lower bounds of what the arrays need (bytes per edge, node or sample times the
count); they refuse only what cannot fit, never what merely might be slow.
"""

from __future__ import annotations

import os
import resource

from labtrain.schema import ConfigError

__all__ = ["available_bytes", "check_memory", "graph_size", "format_bytes"]

#: Bytes per edge and per node of a built network (edge list, conductances, incidence, Laplacian, solver).
BYTES_PER_EDGE = 120
BYTES_PER_NODE = 120


def available_bytes() -> int:
    """Memory this process may still use: the system's available memory (``MemAvailable``), capped by an
    address-space limit (``ulimit -v``) if one is set."""
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 1 << 62  # unknown: do not refuse
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        avail = min(avail, soft)
    return int(avail)


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"  # pragma: no cover


def check_memory(where: str, what: str, nbytes: float) -> None:
    """Raise ``ConfigError`` ``"{where}: {what} needs at least X of memory, this machine has Y available"``
    when ``nbytes`` does not fit."""
    avail = available_bytes()
    if nbytes > avail:
        raise ConfigError(f"{where}: {what} needs at least {format_bytes(nbytes)} of memory, this machine has "
                          f"{format_bytes(avail)} available")


def graph_size(chip: dict, n_inputs: int, n_outputs: int) -> tuple[int, int]:
    """``(nodes, edges)`` the ``[chip]`` graph keys would build (edge-list files: ``(0, 0)``, bounded when read)."""
    topo = chip.get("topology")
    if topo == "lattice":
        rows, cols = int(chip["rows"]), int(chip["cols"])
        n = rows * cols
        per_node = 2 + (2 if chip.get("diagonals") else 0) + (2 if int(chip.get("skip", 0)) > 1 else 0)
        return n, per_node * n
    if topo == "all_to_all":
        n = int(chip["n_nodes"])
        return n, n * (n - 1) // 2 + n * n // 16  # the edge pairs plus numpy's n x n mask (bytes, in edges)
    if topo == "random":
        return int(chip["n_nodes"]), 4 * int(chip["n_edges"])  # a Python set of pairs while drawing
    if topo == "layered" and "hidden_layers" in chip:
        sizes = [n_inputs + 1, *map(int, chip["hidden_layers"]), n_outputs]
        return sum(sizes), sum(a * b for a, b in zip(sizes, sizes[1:]))
    return 0, 0
