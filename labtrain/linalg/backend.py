"""Array backends for the dense batched relaxations: NumPy (default, the reference) or JAX.

``[chip] array_backend = "numpy" | "jax"`` picks one in the experiment file.
JAX (``pip install -e '.[accel]'`` in the labtrain checkout) is imported lazily, on the first
model that asks for it, never by ``import labtrain``.  It runs in float64
(``jax_enable_x64`` is switched on when labtrain loads it: the relaxations
converge to ``|ds/dt| < 1e-10``, which float32 cannot resolve), on the
default JAX device -- the CPU here, a GPU where a CUDA ``jaxlib`` is
installed.  Asking for ``jax`` without JAX installed falls back to NumPy with
one logged line, like a missing CHOLMOD.
"""

from __future__ import annotations

import importlib.util
import logging
from types import ModuleType

__all__ = ["ARRAY_BACKENDS", "check_array_backend", "jax_available", "load_jax", "resolve_array_backend"]

#: The array backends a model may be asked for.
ARRAY_BACKENDS = ("numpy", "jax")

_log = logging.getLogger("labtrain.linalg")
_noted: set[str] = set()


def check_array_backend(name: str) -> str:
    """``name`` if it is one of :data:`ARRAY_BACKENDS`, else a one-line ``ValueError``."""
    if name not in ARRAY_BACKENDS:
        raise ValueError(f"array_backend must be one of {ARRAY_BACKENDS}, got {name!r}")
    return name


def jax_available() -> bool:
    """Whether JAX is installed (found on the path; not imported)."""
    return importlib.util.find_spec("jax") is not None


def resolve_array_backend(requested: str) -> str:
    """The backend a model uses for ``requested``: ``numpy``, or ``jax`` when it is installed.

    ``jax`` without JAX: ``numpy`` and one logged warning per process.
    """
    check_array_backend(requested)
    if requested == "jax" and not jax_available():
        message = ("labtrain.linalg: JAX is not installed; the relaxation runs on NumPy "
                   "(pip install -e '.[accel]' in the labtrain checkout, for array_backend = 'jax')")
        if message not in _noted:
            _noted.add(message)
            _log.warning(message)
        return "numpy"
    return requested


def load_jax() -> tuple[ModuleType, ModuleType]:
    """``(jax, jax.numpy)`` with float64 enabled.

    Raises
    ------
    ImportError
        JAX is not installed.
    """
    import jax  # optional dependency, imported on first use
    import jax.numpy as jnp

    if not jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", True)
    return jax, jnp
