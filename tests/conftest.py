"""Shared pytest options.

Hardware tests (``@pytest.mark.hardware``) run only with ``--hardware``; each
also needs the address of its instrument (``--daq-device``, ``--lockin``,
``--potbridge``, ``--ftdi-url``) and skips without it.  They only query
(identify, read back): they never apply a voltage or move a pot.
"""

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("labtrain hardware")
    group.addoption("--hardware", action="store_true", default=False,
                    help="run tests marked 'hardware' against real instruments (read-only queries)")
    group.addoption("--daq-device", default=None, help="NI-DAQmx device name for hardware tests, e.g. Dev1")
    group.addoption("--lockin", default=None,
                    help="lock-in for hardware tests as MODEL@VISA, e.g. SR830@GPIB0::8::INSTR")
    group.addoption("--potbridge", default=None,
                    help="pot bridge for hardware tests as PORT:N_CHANNELS:N_TAPS, e.g. /dev/ttyACM0:32:1024")
    group.addoption("--ftdi-url", default=None, help="AD5293 chain for hardware tests as URL#N_PARTS, "
                    "e.g. ftdi://ftdi:232h/1#8")


def pytest_configure(config):
    config.addinivalue_line("markers", "hardware: needs real instruments; runs only with --hardware")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--hardware"):
        return
    skip = pytest.mark.skip(reason="hardware test: run with --hardware and an instrument address")
    for item in items:
        if "hardware" in item.keywords:
            item.add_marker(skip)


# GUI tests (pytest-qt) run without a display; set before Qt is first imported.
import os  # noqa: E402

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


# Fabricated MNIST files (the IDX layout: magic 0 0 type ndim, big-endian sizes, then the bytes).
def write_idx(path, array) -> None:
    """Write ``array`` (uint8) as an IDX file, gzip-compressed when ``path`` ends in ``.gz``."""
    import gzip

    import numpy as np

    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with (gzip.open if str(path).endswith(".gz") else open)(path, "wb") as fh:
        fh.write(header + array.tobytes())


@pytest.fixture(scope="session")
def fake_mnist_10k(tmp_path_factory):
    """A folder with fabricated t10k files of 60 random 28x28 images, labels 0-9 in turn (MNIST-10k layout:
    the experiment files that need ``task.mnist_path`` build on it without the real data)."""
    import numpy as np

    folder = tmp_path_factory.mktemp("fake_mnist")
    rng = np.random.default_rng(0)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (60, 28, 28)))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(60) % 10)
    return folder
