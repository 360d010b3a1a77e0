"""Helpers shared by the drivers: lazy imports of optional packages and exception translation."""

from __future__ import annotations

import importlib
import logging
from types import ModuleType

from labtrain.instruments.ports import PortIOError, PortTimeout

__all__ = ["require", "HARDWARE_EXTRA", "is_timeout", "VI_ERROR_TMO"]

log = logging.getLogger(__name__)

#: how the user installs every optional instrument package
HARDWARE_EXTRA = "pip install -e '.[hardware]' in the labtrain checkout"

#: pyvisa's StatusCode.error_timeout (VI_ERROR_TMO), without importing pyvisa
VI_ERROR_TMO = -1073807339


def require(module: str, who: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise a one-line :class:`ImportError` naming the pip extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pkg = package or module.split(".")[0]
        missing = getattr(exc, "name", None) in (None, module, module.split(".")[0])
        why = "" if missing else f" (importing it failed: {exc})"
        raise ImportError(f"{who} needs the '{pkg}' package{why}: {HARDWARE_EXTRA}") from exc


def is_timeout(exc: BaseException) -> bool:
    """True for the timeout exceptions of the libraries under the drivers (without importing them)."""
    if isinstance(exc, TimeoutError):
        return True
    name = type(exc).__name__
    if name in ("SerialTimeoutException", "USBTimeoutError"):
        return True
    module = type(exc).__module__ or ""
    return module.startswith("pyvisa") and getattr(exc, "error_code", None) == VI_ERROR_TMO


def translate(exc: BaseException, what: str) -> Exception:
    """The port exception for a library exception raised while doing ``what``."""
    log.debug("%s: %s: %s", what, type(exc).__name__, exc)
    if is_timeout(exc):
        return PortTimeout(f"{what}: timed out ({exc})")
    return PortIOError(f"{what}: {type(exc).__name__}: {exc}")
