"""Where a run came from: labtrain's version and git revision, Python and key packages, host, instruments.

:func:`provenance` returns flat ``name -> str`` entries that every run file
keeps as root attributes (``labtrain show`` prints them; ``labtrain.load_run``
and ``labtrain export`` carry them into the dataset's attributes)::

    labtrain_version   0.2.1.dev3+g4bb9d40.d20261207   (setuptools-scm: from the git tags)
    git_revision       4bb9d40c...                      (only when labtrain runs from a git checkout)
    git_dirty          yes | no                         (uncommitted changes in that checkout)
    git_describe       v0.1.0-85-g4bb9d40-dirty         (the checkout now: an editable install's version
                                                         is the one at install time)
    python_version     3.11.2
    platform           Linux-6.1.0-x86_64-with-glibc2.36
    hostname           benchpc
    version_numpy, version_scipy, version_h5py, ...     (installed key packages)
    instrument_<path>  identity string of every instrument the chip reports (twin and hardware)
"""

from __future__ import annotations

import functools
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

__all__ = ["provenance", "git_revision", "git_describe", "instrument_identities", "KEY_PACKAGES", "install_hint"]

#: packages whose versions decide a run's numbers (and the ones the run file / export go through)
KEY_PACKAGES = ("numpy", "scipy", "h5py", "scikit-learn", "xarray", "h5netcdf", "nidaqmx", "pymeasure", "pyvisa",
                "pyamg", "scikit-sparse")

_ROOT = Path(__file__).resolve().parent.parent


def install_hint(extra: str) -> str:
    """How to install one of labtrain's extras, as it is really installed: from its checkout.

    >>> install_hint("gui")
    "pip install -e '.[gui]' in the labtrain checkout"
    """
    return f"pip install -e '.[{extra}]' in the labtrain checkout"


@functools.lru_cache(maxsize=1)
def git_describe() -> str | None:
    """``git describe --tags --long --dirty`` of the checkout labtrain is imported from (None: not one)."""
    if git_revision() is None:
        return None
    try:
        out = subprocess.run(["git", "-C", str(_ROOT), "describe", "--tags", "--long", "--dirty", "--always"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def git_revision() -> tuple[str, bool] | None:
    """``(commit, dirty)`` of the git checkout labtrain is imported from; None when it is not one
    (an installed wheel or sdist) or git is not available."""
    if not (_ROOT / ".git").exists():
        return None
    try:
        rev = subprocess.run(["git", "-C", str(_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10)
        if rev.returncode != 0:
            return None
        status = subprocess.run(["git", "-C", str(_ROOT), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return rev.stdout.strip(), bool(status.stdout.strip())


def _package_versions() -> dict[str, str]:
    out = {}
    for name in KEY_PACKAGES:
        try:
            out[f"version_{name.replace('-', '_')}"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def instrument_identities(snapshot: Mapping[str, Any] | None) -> dict[str, str]:
    """``{path: identity}`` of every instrument a chip snapshot reports (``"identity"`` keys at any depth;
    the path joins the keys above it with ``.``, e.g. ``daq``, ``pots``)."""
    found: dict[str, str] = {}

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key == "identity" and isinstance(value, str):
                    found[".".join(path) or "chip"] = value
                else:
                    walk(value, (*path, str(key)))
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                walk(value, (*path, str(i)))

    walk(snapshot or {}, ())
    return found


def provenance(chip_snapshot: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Flat provenance attributes of a run made now, by this process (module docstring)."""
    from labtrain import __version__

    out = {"labtrain_version": __version__}
    git = git_revision()
    if git is not None:
        out["git_revision"], out["git_dirty"] = git[0], "yes" if git[1] else "no"
        describe = git_describe()
        if describe:
            out["git_describe"] = describe
    out["python_version"] = platform.python_version()
    out["python_implementation"] = platform.python_implementation()
    out["platform"] = platform.platform()
    out["hostname"] = socket.gethostname()
    out["executable"] = sys.executable
    out |= _package_versions()
    out |= {f"instrument_{k}": v for k, v in instrument_identities(chip_snapshot).items()}
    return out
