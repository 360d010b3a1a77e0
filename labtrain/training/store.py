"""One HDF5 file per run, crash-consistent: a kill at any byte leaves the last commit readable and resumable.

Format ``labtrain-run-2`` (docs/run-file.md has the full description)::

    /                     attrs: format, labtrain_version, name, created, rule, backend, seed (never change)
    /experiment           the experiment file's text (attrs: overrides as JSON, source path)
    /snapshot, /task      JSON text of the chip/settings snapshot and of the task description
    /parameters/initial   parameters before training
    /state                2 commit records (magic, seq, length, crc, json): status, row counts, checkpoint, lease
    /steps                compound rows (step, epoch, time_s, loss, n_phases, crc), pre-allocated
    /eval                 compound rows (step, epoch, train/test loss and accuracy, crc), pre-allocated
    /parameters/history   parameters after selected steps, with /parameters/history_step
    /parameters/final     parameters at the end of a completed run (valid when the state says so)
    /checkpoint           uint8 (3, n): three self-checking checkpoint slots
    /maps/<name>, /maps/step   optional spatial maps (xy chips)

How it stays consistent.  The HDF5 structure (every group, dataset and
attribute) is written once, when the file is created (or re-laid out, e.g.
to hold more steps), into a sibling file that is flushed to disk and renamed
into place -- so a run file either has its complete structure or does not
exist.  HDF5 itself never writes to a run file afterwards: every dataset that
changes during a run is contiguous, allocated (and reserved on disk) at
creation, and written in place with plain ``pwrite`` calls at its file
offset.  Rows are appended beyond the committed count; a checkpoint goes to
a slot that neither the current commit nor the last one flushed to disk
points to.  Only then is the next commit record written -- to the *other* of
two state slots, with a sequence number and a CRC -- so a torn record is
detected and the older one is used, and everything the older one points to
is untouched.  Each commit is thus atomic: readers (live ones too) see whole
rows only; a resumed run starts from the newest complete checkpoint.  The
file is fsynced at a checkpoint at most every :data:`DURABLE_INTERVAL_S`
(and at every status change), so after a power loss a checkpoint at most
that old survives (a process kill loses nothing committed).

The state also holds the run's *lease*: the owner (host, boot, pid, process
start time, random token) that may write the file.  It is taken by a
compare-and-set on the state (write, wait, re-read) that needs no OS file
lock, so it works on network filesystems; a lease whose process is dead (on
this host) is taken over.

Disk-full, file-size-limit and I/O errors surface as :class:`StoreWriteError`
(an ``OSError`` from a plain write, never from inside HDF5); the state record
lives in blocks written at creation, so the final status can still be
recorded on a full disk.

Files of the previous format (``labtrain-run-1``) are read as before;
resuming one converts it to this format first (``labtrain repair`` does the
same for a damaged one).
"""

from __future__ import annotations

import errno as _errno
import io
import json
import logging
import math
import os
import secrets
import socket
import struct
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, cast

import h5py
import numpy as np
from h5py import h5d, h5p

from labtrain import __version__

__all__ = ["RunStore", "StoreError", "StoreWriteError", "LeaseError", "STEP_COLUMNS", "EVAL_COLUMNS", "FORMAT",
           "read_summary", "list_runs", "repair_run", "set_write_hook", "write_count", "RunContents", "resource_error",
           "RunUnits"]

log = logging.getLogger(__name__)

FORMAT = "labtrain-run-2"
FORMAT_V1 = "labtrain-run-1"
STEP_COLUMNS = ("step", "epoch", "time_s", "loss", "n_phases")
EVAL_COLUMNS = ("step", "epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy")
STEP_DTYPE = np.dtype([("step", "<i8"), ("epoch", "<i8"), ("time_s", "<f8"), ("loss", "<f8"), ("n_phases", "<i8"),
                       ("crc", "<u4")])
EVAL_DTYPE = np.dtype([("step", "<i8"), ("epoch", "<i8"), ("train_loss", "<f8"), ("train_accuracy", "<f8"),
                       ("test_loss", "<f8"), ("test_accuracy", "<f8"), ("crc", "<u4")])
EVENT_DTYPE = np.dtype([("time_s", "<f8"), ("step", "<i8"), ("level", "S8"), ("kind", "S16"), ("source", "S40"),
                        ("message", "S440"), ("crc", "<u4")])
EVENT_COLUMNS = ("time_s", "step", "level", "kind", "source", "message")
EVENT_ROWS = 256
"""Rows of ``/events`` laid out at creation (the file grows, doubling, when a run logs more)."""
EVENT_ROWS_MAX = 65536
"""Most event rows a run file keeps; later events are counted (state ``events_dropped``), not stored."""
STATE_SLOT_BYTES = 4096
MESSAGE_MAX_CHARS = 1500
LEASE_SETTLE_S = 0.2
"""Seconds between writing a lease and re-reading it: a concurrent taker's write lands in between."""
DURABLE_INTERVAL_S = 1.0
"""Checkpoints are fsynced when the last fsync is older than this (seconds)."""
CHECKPOINT_SLOTS = 3

_STATE_HEADER = struct.Struct("<4sQII")  # magic, sequence number, payload length, CRC32
STATE_DTYPE = np.dtype([("magic", "S4"), ("seq", "<u8"), ("length", "<u4"), ("crc", "<u4"),
                        ("json", f"S{STATE_SLOT_BYTES - _STATE_HEADER.size}")])
_STATE_MAGIC = b"LTS2"
_CKPT_HEADER = struct.Struct("<4sqQI")  # magic, step, archive length, CRC32 of the archive
_CKPT_MAGIC = b"LTC2"
_MUTABLE = {"state", "steps", "eval", "checkpoint", "maps", "events", "parameters/history",
            "parameters/history_step", "parameters/final"}
_V1_MUTABLE_ATTRS = ("format", "status", "message", "pid", "total_steps")
_RESOURCE_REASONS = {_errno.ENOSPC: "disk full", _errno.EFBIG: "file size limit reached",
                     _errno.EDQUOT: "disk quota exceeded", _errno.EIO: "I/O error"}


class StoreError(RuntimeError):
    """A run file is missing, unreadable, damaged or not a labtrain run."""


class LeaseError(StoreError):
    """The run file is owned (being written) by another live process."""


class StoreWriteError(StoreError):
    """Writing the run file failed (disk full, file-size limit, I/O error): a resource fault, not bad input.

    Attributes
    ----------
    reason : str
        ``"disk full"``, ``"file size limit reached"``, ``"disk quota exceeded"``, ``"I/O error"`` or
        ``"write error"``.
    errno : int or None
        The operating system's error number.
    """

    def __init__(self, message: str, reason: str, errno: int | None) -> None:
        super().__init__(message)
        self.reason, self.errno = reason, errno


def resource_error(exc: OSError, path: str | Path, what: str) -> StoreWriteError:
    """A :class:`StoreWriteError` for an ``OSError`` raised while writing ``what`` to ``path``."""
    reason = _RESOURCE_REASONS.get(exc.errno or 0, "write error")
    code = _errno.errorcode.get(exc.errno or 0, "?")
    return StoreWriteError(f"{reason} ({code}) writing {what} to {path}", reason, exc.errno)


# ------------------------------------------------------------------ low-level I/O
WriteHook = Callable[[int, str, int, int, bytes], None]
_write_hook: WriteHook | None = None
_write_count = 0


def set_write_hook(hook: WriteHook | None) -> WriteHook | None:
    """Install ``hook(index, what, fd, offset, data)``, called before every write and fsync of a run file.

    For fault-injection tests (kill or fail at the N-th write): every byte a run file gets -- its
    creation, re-layouts, rows, checkpoints, commits -- passes here.  ``what`` names the region
    (``create``, ``rewrite``, ``state``, ``steps``, ``checkpoint``, ``fsync``, ...), ``index``
    counts writes and fsyncs in this process.  Returns the previous hook.
    """
    global _write_hook
    previous, _write_hook = _write_hook, hook
    return previous


def write_count() -> int:
    """Writes and fsyncs of run files in this process so far (the ``index`` the next one gets)."""
    return _write_count


def _io_write(fd: int, data: bytes, offset: int, what: str) -> None:
    """The one place run-file bytes are written (counted, and offered to the write hook first)."""
    global _write_count
    index, _write_count = _write_count, _write_count + 1
    if _write_hook is not None:
        _write_hook(index, what, fd, offset, data)
    _pwrite(fd, data, offset)


def _io_fsync(fd: int, what: str) -> None:
    global _write_count
    index, _write_count = _write_count, _write_count + 1
    if _write_hook is not None:
        _write_hook(index, "fsync", fd, -1, b"")
    os.fsync(fd)


def _pwrite(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        if hasattr(os, "pwrite"):
            n = os.pwrite(fd, view, offset)
        else:  # pragma: no cover - Windows
            os.lseek(fd, offset, os.SEEK_SET)
            n = os.write(fd, view)
        view, offset = view[n:], offset + n


def _pread(fd: int, n: int, offset: int) -> bytes:
    if hasattr(os, "pread"):
        data = os.pread(fd, n, offset)
    else:  # pragma: no cover - Windows
        os.lseek(fd, offset, os.SEEK_SET)
        data = os.read(fd, n)
    return data + bytes(n - len(data))


def _fsync_dir(path: Path) -> None:
    if sys.platform == "win32":  # pragma: no cover
        return
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _row_crc(row: np.ndarray) -> int:
    """CRC32 of a compound row's bytes without its ``crc`` field (never 0 for an all-zero row)."""
    return zlib.crc32(row.tobytes()[:-4], 0x5A5A5A5A) or 1


# ------------------------------------------------------------------ HDF5 image in memory
class _SparseImage(io.RawIOBase):
    """A file-like HDF5 target kept in memory as written extents (unwritten space costs nothing).

    h5py builds the file structure into it; :meth:`write_to` then puts it on disk with plain
    writes, so a full disk is an ``OSError`` here, never an error (or a crash) inside HDF5.
    """

    def __init__(self) -> None:
        super().__init__()
        self.extents: list[tuple[int, bytes]] = []
        self.size = 0
        self.pos = 0

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else (self.pos + offset if whence == 1 else self.size + offset)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def write(self, data) -> int:  # type: ignore[override]
        data = bytes(data)
        self.extents.append((self.pos, data))
        self.pos += len(data)
        self.size = max(self.size, self.pos)
        return len(data)

    def readinto(self, buffer) -> int:  # type: ignore[override]
        n = len(buffer)
        out = bytearray(n)
        for start, data in self.extents:
            lo, hi = max(start, self.pos), min(start + len(data), self.pos + n)
            if lo < hi:
                out[lo - self.pos:hi - self.pos] = data[lo - start:hi - start]
        buffer[:n] = out
        self.pos += n
        return n

    def truncate(self, size: int | None = None) -> int:
        self.size = self.pos if size is None else int(size)
        return self.size

    def flush(self) -> None:
        pass

    def clusters(self, gap: int = 65536) -> list[tuple[int, bytes]]:
        """The written bytes as few contiguous pieces (extents less than ``gap`` apart merged; later wins)."""
        order = sorted(range(len(self.extents)), key=lambda i: self.extents[i][0])
        groups: list[list[int]] = []
        end = -gap - 1
        for i in order:
            start, data = self.extents[i]
            if start >= self.size:
                continue
            if start > end + gap:
                groups.append([])
            groups[-1].append(i)
            end = max(end, start + len(data))
        pieces = []
        for group in groups:
            lo = min(self.extents[i][0] for i in group)
            hi = min(self.size, max(self.extents[i][0] + len(self.extents[i][1]) for i in group))
            buf = bytearray(hi - lo)
            for i in sorted(group):  # in write order
                start, data = self.extents[i]
                piece = data[:hi - start]
                buf[start - lo:start - lo + len(piece)] = piece
            pieces.append((lo, bytes(buf)))
        return pieces

    def write_to(self, fd: int, path: Path, reserve: bool = True) -> None:
        """Write the image to ``fd`` and size (reserve) the file; ``OSError`` becomes :class:`StoreWriteError`."""
        try:
            for start, data in self.clusters():
                _io_write(fd, data, start, "create")
            os.ftruncate(fd, self.size)
            if reserve and hasattr(os, "posix_fallocate"):
                try:
                    os.posix_fallocate(fd, 0, self.size)
                except OSError as exc:  # a filesystem without fallocate: stay sparse
                    if exc.errno not in (_errno.EOPNOTSUPP, _errno.ENOSYS, _errno.EINVAL):
                        raise
            _io_fsync(fd, "create")
        except OSError as exc:
            raise resource_error(exc, path, "the run file's structure") from None


def _dcpl() -> h5p.PropDCID:
    """Contiguous, allocated at creation, never filled: written in place at a fixed offset."""
    dcpl = h5p.create(h5p.DATASET_CREATE)
    dcpl.set_layout(h5d.CONTIGUOUS)
    dcpl.set_alloc_time(h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5d.FILL_TIME_NEVER)
    return dcpl


def _fixed(group: h5py.Group, name: str, shape: tuple[int, ...], dtype: Any, doc: str) -> h5py.Dataset:
    ds = group.create_dataset(name, shape=shape, dtype=dtype, dcpl=_dcpl(), track_times=False)
    ds.attrs["doc"] = doc
    return ds


# ------------------------------------------------------------------ state records
def _encode_state(seq: int, state: dict) -> bytes:
    payload = json.dumps(state, sort_keys=True, separators=(",", ":")).encode()
    limit = STATE_SLOT_BYTES - _STATE_HEADER.size
    if len(payload) > limit:
        raise StoreError(f"run state record is {len(payload)} bytes, the slot holds {limit}")
    head = struct.pack("<QI", seq, len(payload))
    crc = zlib.crc32(head + payload)
    record = _STATE_HEADER.pack(_STATE_MAGIC, seq, len(payload), crc) + payload
    return record + bytes(STATE_SLOT_BYTES - len(record))  # the whole slot: no bytes of an older record stay


def _decode_state(raw: bytes) -> tuple[int, dict] | None:
    magic, seq, n, crc = _STATE_HEADER.unpack_from(raw)
    if magic != _STATE_MAGIC or n > len(raw) - _STATE_HEADER.size:
        return None
    payload = raw[_STATE_HEADER.size:_STATE_HEADER.size + n]
    if zlib.crc32(struct.pack("<QI", seq, n) + payload) != crc:
        return None
    try:
        return seq, json.loads(payload)
    except ValueError:
        return None


def _encode_checkpoint(step: int, parameters: np.ndarray, optimizer_state: dict[str, np.ndarray]) -> bytes:
    """Header (magic, step, length, CRC32) + payload: u32 index length, JSON index
    ``[[name, dtype, shape], ...]``, then the arrays' little-endian C-order bytes in index order."""
    arrays = {"parameters": np.asarray(parameters, float),
              **{f"optimizer.{k}": np.asarray(v) for k, v in optimizer_state.items()}}
    arrays = {k: v.astype(v.dtype.newbyteorder("<"), order="C", copy=False) for k, v in arrays.items()}
    index = json.dumps([[k, v.dtype.str, list(v.shape)] for k, v in arrays.items()]).encode()
    payload = b"".join([struct.pack("<I", len(index)), index, *(v.tobytes() for v in arrays.values())])
    return _CKPT_HEADER.pack(_CKPT_MAGIC, step, len(payload), zlib.crc32(payload)) + payload


def _decode_checkpoint(raw: bytes) -> tuple[int, np.ndarray, dict[str, np.ndarray]] | None:
    magic, step, n, crc = _CKPT_HEADER.unpack_from(raw)
    if magic != _CKPT_MAGIC or n > len(raw) - _CKPT_HEADER.size:
        return None
    payload = raw[_CKPT_HEADER.size:_CKPT_HEADER.size + n]
    if zlib.crc32(payload) != crc:
        return None
    (k,) = struct.unpack_from("<I", payload)
    pos, arrays = 4 + k, {}
    for name, dtype, shape in json.loads(payload[4:4 + k]):
        dt = np.dtype(dtype)
        size = dt.itemsize * int(np.prod(shape, dtype=np.int64))
        value = np.frombuffer(payload, dt, int(np.prod(shape, dtype=np.int64)), pos).reshape(shape).copy()
        arrays[name] = value[()] if value.ndim == 0 else value
        pos += size
    opt = {name[len("optimizer."):]: v for name, v in arrays.items() if name.startswith("optimizer.")}
    return int(step), arrays["parameters"], opt


# ------------------------------------------------------------------ lease
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> int | None:
    """Start time of process ``pid`` in clock ticks since boot (Linux), None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if sys.platform == "win32":  # pragma: no cover - no signal-0 probe; assume alive
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _my_owner() -> dict:
    return {"host": socket.gethostname(), "boot": _boot_id(), "pid": os.getpid(), "start": _process_start(os.getpid()),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"), "token": secrets.token_hex(8)}


def owner_alive(owner: dict | None) -> bool:
    """Whether the lease ``owner`` may still be writing: True for another host (it cannot be checked here)."""
    if not owner:
        return False
    if owner.get("host") != socket.gethostname():
        return True
    if owner.get("boot") and _boot_id() and owner["boot"] != _boot_id():
        return False  # this host rebooted since
    pid = int(owner.get("pid", -1))
    if not _pid_alive(pid):
        return False
    start = _process_start(pid)
    return owner.get("start") is None or start is None or start == owner["start"]


def _describe_owner(owner: dict) -> str:
    return f"pid {owner.get('pid')} on {owner.get('host')}, since {owner.get('since')}"


# ------------------------------------------------------------------ layout
@dataclass
class _Region:
    """A fixed, contiguous dataset written in place: file offset, rows, row size and dtype."""

    offset: int
    rows: int
    row_bytes: int
    dtype: np.dtype
    shape: tuple[int, ...] = ()

    def at(self, row: int) -> int:
        if not 0 <= row < self.rows:
            raise IndexError(row)
        return self.offset + row * self.row_bytes


@dataclass
class _Layout:
    state: _Region
    steps: _Region
    eval: _Region
    history: _Region
    history_step: _Region
    final: _Region
    checkpoint: _Region
    maps: dict[str, _Region] = field(default_factory=dict)
    events: _Region | None = None  # None: a file written before /events existed

    @classmethod
    def of(cls, h5: h5py.File) -> "_Layout":
        def region(ds: h5py.Dataset) -> _Region:
            offset = ds.id.get_offset()
            if offset is None or ds.chunks is not None:
                raise StoreError(f"{ds.file.filename}: dataset {ds.name} is not stored in place")
            rows = ds.shape[0]
            inner = tuple(ds.shape[1:])
            row_bytes = ds.dtype.itemsize * int(np.prod(inner, dtype=np.int64))
            return _Region(offset, rows, row_bytes, ds.dtype, inner)

        maps = {name: region(ds) for name, ds in h5["maps"].items()
                if name == "step" or not _is_scale(ds)} if "maps" in h5 else {}
        return cls(region(h5["state"]), region(h5["steps"]), region(h5["eval"]), region(h5["parameters/history"]),
                   region(h5["parameters/history_step"]), region(h5["parameters/final"]), region(h5["checkpoint"]),
                   maps, region(h5["events"]) if "events" in h5 else None)

    @property
    def capacity(self) -> dict[str, int]:
        return {"steps": self.steps.rows, "eval": self.eval.rows, "history": self.history.rows,
                "maps": self.maps["step"].rows if "step" in self.maps else 0,
                "events": self.events.rows if self.events is not None else 0,
                "checkpoint_bytes": self.checkpoint.row_bytes}


def _checkpoint_bytes(n_params: int) -> int:
    """Room per checkpoint slot: parameters plus up to four optimiser vectors and the archive overhead."""
    return _CKPT_HEADER.size + 8 * n_params * 5 + 8192


def _build_image(source: h5py.File | None, root_attrs: dict, immutable: dict[str, Any], n_params: int,
                 capacity: dict[str, int], maps_spec: dict[str, tuple[tuple[int, ...], dict]],
                 seq: int, state: dict) -> tuple[_SparseImage, _Layout]:
    """The complete HDF5 structure of a format-2 file, in memory.

    ``source`` (an open run file) contributes every immutable object; ``immutable`` adds datasets
    (name -> (data, attrs)) for a new file.  ``maps_spec``: name -> (row shape, attrs).
    """
    img = _SparseImage()
    with h5py.File(img, "w") as h5:
        h5.attrs.update(root_attrs)
        h5.attrs["format"] = FORMAT
        states = np.zeros(2, STATE_DTYPE)
        states[seq % 2] = np.frombuffer(_encode_state(seq, state), STATE_DTYPE)[0]
        ds = h5.create_dataset("state", data=states, dcpl=_dcpl(), track_times=False)
        ds.attrs["doc"] = ("two commit records; the one with magic LTS2, a CRC32 (of seq, length, json) that "
                           "matches and the higher seq is current")
        if source is not None:
            for name, obj in source.items():
                if name in _MUTABLE:
                    continue
                if name == "parameters":
                    g = h5.require_group("parameters")
                    for sub, child in obj.items():
                        if f"parameters/{sub}" not in _MUTABLE and not _is_scale(child):
                            source.copy(child, g, name=sub)
                elif not _is_scale(obj):  # dimension scales are laid out afresh (_attach_dims)
                    source.copy(obj, h5, name=name)
        for name, (data, attrs) in immutable.items():
            ds = h5.create_dataset(name, data=data)
            ds.attrs.update(attrs)
        p = h5.require_group("parameters")
        _fixed(h5, "steps", (capacity["steps"],), STEP_DTYPE, "one row per completed step; rows beyond the "
               "committed count in /state are not valid")
        _fixed(h5, "eval", (capacity["eval"],), EVAL_DTYPE, "one row per evaluation (step -1: before training)")
        _fixed(h5, "events", (max(1, capacity.get("events", EVENT_ROWS)),), EVENT_DTYPE,
               "one row per run event (instrument retries and faults, safety actions, pauses, resumptions, stops, "
               "warnings): Unix time, step, level, kind, logger, message (UTF-8); rows beyond the committed count "
               "in /state are not valid")
        _fixed(p, "history", (capacity["history"], n_params), "<f8", "parameters after the steps in history_step")
        _fixed(p, "history_step", (capacity["history"],), "<i8", "step of each history row")
        _fixed(p, "final", (n_params,), "<f8", "parameters at the end of a completed run (valid when /state "
               "says final)")
        _fixed(h5, "checkpoint", (CHECKPOINT_SLOTS, capacity["checkpoint_bytes"]), np.uint8,
               "checkpoint slots (magic LTC2, i64 step, u64 length, u32 CRC32 of the payload; payload: u32 n, "
               "n bytes JSON [[name, dtype, shape], ...], then the arrays' bytes); /state points to the current one")
        if maps_spec:
            g = h5.create_group("maps")
            _fixed(g, "step", (capacity["maps"],), "<i8", "step after which each map row was taken (-1: before)")
            for name, (shape, attrs) in maps_spec.items():
                ds = _fixed(g, name, (capacity["maps"], *shape), "<f8", attrs.get("doc", name))
                ds.attrs.update({k: v for k, v in attrs.items() if k not in _SCALE_ATTRS})
        _attach_dims(h5)
        h5.flush()
        layout = _Layout.of(h5)
    return img, layout


_SCALE_ATTRS = ("DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME", "DIMENSION_LABELS", "_Netcdf4Dimid",
                "_Netcdf4Coordinates")
_ROOT_DIMS = {"steps": ("step_row",), "eval": ("eval_row",), "events": ("event_row",), "state": ("state_slot",),
              "checkpoint": ("checkpoint_slot", "checkpoint_byte")}
#: the NAME netCDF-4 gives a dimension that has no coordinate variable (no data is stored for it)
_NC_DIMENSION_ONLY = "This is a netCDF dimension but not a netCDF variable."


def _is_scale(obj: Any) -> bool:
    return isinstance(obj, h5py.Dataset) and obj.attrs.get("CLASS") == b"DIMENSION_SCALE"


def _attach_dims(h5: h5py.File) -> None:
    """netCDF-4 dimension scales, so ``xarray.open_dataset(run.h5, group=..., engine="h5netcdf")`` names every
    dimension (no ``phony_dim_*``): ``/parameters``: ``parameter`` (an index coordinate) and ``history_step``
    (the history's record coordinate); ``/maps``: ``step`` (the recording coordinate) and each map's own
    dimensions from its ``dims`` attribute (index coordinates); root tables: ``step_row``, ``eval_row``,
    ``event_row``, ``state_slot``, ``checkpoint_slot`` (index coordinates; rows beyond the committed counts
    in ``/state`` are not valid) and ``checkpoint_byte`` (a dimension without coordinate).

    Part of the structure written once at creation (and at every re-layout, where copied objects get their
    scales afresh): scales are attributes and small immutable datasets, never written during a run.
    """
    def fresh(ds: h5py.Dataset) -> h5py.Dataset:
        for key in _SCALE_ATTRS:  # a copied dataset's scales point into its old file
            if key in ds.attrs:
                del ds.attrs[key]
        return ds

    def scale(group: h5py.Group, name: str, size: int, doc: str, coordinate: bool = True) -> h5py.Dataset:
        if name in group:
            ds = group[name]
            if not _is_scale(ds):
                ds.make_scale(name)
            return ds
        if coordinate:
            ds = group.create_dataset(name, data=np.arange(size, dtype="<i8"), track_times=False)
            ds.make_scale(name)
            ds.attrs["long_name"] = doc
            ds.attrs["units"] = "1"
        else:
            ds = group.create_dataset(name, shape=(size,), dtype="<f4", track_times=False)
            ds.make_scale(f"{_NC_DIMENSION_ONLY}{size:10d}")
        return ds

    for name, root_dims in _ROOT_DIMS.items():
        if name in h5 and isinstance(h5[name], h5py.Dataset):
            ds = fresh(h5[name])
            for axis, dim in enumerate(root_dims):
                s = scale(h5, dim, ds.shape[axis], f"{name} {dim.split('_')[-1]} index",
                          coordinate=dim != "checkpoint_byte")
                ds.dims[axis].attach_scale(s)
    p = h5["parameters"]
    n = p["initial"].shape[0]
    parameter = scale(p, "parameter", n, "parameter index")
    record = scale(p, "history_step", p["history_step"].shape[0], "")
    for name in ("initial", "final", "units", "labels"):
        if name in p and p[name].ndim == 1 and p[name].shape[0] == n:
            fresh(p[name]).dims[0].attach_scale(parameter)
    hist = fresh(p["history"])
    hist.dims[0].attach_scale(record)
    hist.dims[1].attach_scale(parameter)
    if "maps" in h5:
        g = h5["maps"]
        frame = scale(g, "step", g["step"].shape[0], "")
        for name, ds in list(g.items()):
            if name == "step" or _is_scale(ds):
                continue
            declared = [str(d.decode() if isinstance(d, bytes) else d) for d in np.atleast_1d(ds.attrs.get("dims", []))]
            dims = declared if len(declared) == ds.ndim - 1 else [f"{name}_dim{i}" for i in range(ds.ndim - 1)]
            ds.dims[0].attach_scale(frame)
            for axis, dim in enumerate(dims, start=1):
                if dim in g and g[dim].shape[0] != ds.shape[axis]:
                    dim = f"{name}_{dim}"
                ds.dims[axis].attach_scale(scale(g, dim, ds.shape[axis], f"{dim.replace('_', ' ')} index"))
            if "unit" in ds.attrs:
                ds.attrs["units"] = ds.attrs["unit"]
    unit = h5.attrs.get("parameter_units")  # CF units where the chip declared one unit for every parameter
    if isinstance(unit, str) and unit and unit != "mixed":
        for name in ("initial", "final", "history"):
            p[name].attrs["units"] = unit


# ------------------------------------------------------------------ the store
class RunStore:
    """Reader and (one process at a time) writer of one run file.  Use :meth:`create` or :meth:`open`.

    A writer is also a run listener: pass it as ``Run(store=...)`` (or call it with
    :class:`~labtrain.training.run.Event` objects) and every step, evaluation, map,
    checkpoint and status change is committed atomically.
    """

    def __init__(self, path: Path, h5: h5py.File, *, version: int, fd: int | None = None,
                 layout: _Layout | None = None, seq: int = 0, state: dict | None = None, owner: dict | None = None,
                 damage: str = "") -> None:
        self.path = path
        self.h5 = h5
        self.version = version
        self._fd = fd
        # None only in format-1 readers, which never use it (every format-2 path has a layout)
        self._layout: _Layout = cast(_Layout, layout)
        self._seq = seq
        self._state = state or {}
        self._owner = owner
        self._fault: StoreWriteError | None = None
        self._writable = False
        self._durable_slot: int | None = None  # the checkpoint slot of the last fsync: never overwritten
        self._last_fsync = -math.inf
        self._maps_plan = 0
        self._maps_attrs: dict[str, dict] = {}
        self.damage = damage
        """Why some of the file was not readable ("" for a sound file); ``labtrain repair`` fixes it."""

    # ------------------------------------------------------------ lifecycle
    @classmethod
    def create(cls, path: str | Path, *, name: str, experiment_text: str, overrides: dict, source: str,
               snapshot: dict, task: dict, rule: str, backend: str, seed: int, total_steps: int,
               initial_parameters: np.ndarray, rows: dict[str, int] | None = None,
               attrs: dict[str, Any] | None = None, units: "RunUnits | None" = None) -> "RunStore":
        """Create a new run file (owned by this process) with room for ``rows``.

        ``attrs``: extra root attributes, flat names to numbers, strings or lists of them (a sweep
        member stores its sweep, index and every swept key, e.g. ``learning.learning_rate``); they
        never replace the built-in ones.  The built-in ones include the provenance of the run
        (:func:`labtrain.provenance.provenance`: version, git revision, Python and packages, host,
        instrument identities from ``snapshot["chip"]``).

        ``units``: the units the chip and rule declare (:class:`RunUnits`), kept as root attributes
        (``loss_units``, ``output_units``, ``parameter_name``, ``parameter_units``) and, per parameter,
        ``/parameters/units`` and ``/parameters/labels``; readers fall back to the snapshot without them.

        ``rows``: planned rows per table (``steps``, ``eval``, ``history``, ``maps``); by default
        ``total_steps`` steps, ``total_steps + 1`` evaluations and history rows.  A run that needs
        more grows the file.  Raises ``FileExistsError`` if ``path`` exists and
        :class:`StoreWriteError` if the disk cannot hold it (nothing is left behind).
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            raise FileExistsError(f"{path}: run file exists")
        initial = np.asarray(initial_parameters, float)
        n = len(initial)
        plan = {"steps": total_steps, "eval": total_steps + 1, "history": total_steps, "maps": 0} | dict(rows or {})
        capacity = {k: max(1, int(plan[k])) for k in ("steps", "eval", "history", "maps")}
        capacity["checkpoint_bytes"] = _checkpoint_bytes(n)
        owner = _my_owner()
        state = {"status": "running", "message": "", "pid": os.getpid(), "total_steps": int(total_steps),
                 "rows": {"steps": 0, "eval": 0, "history": 0, "maps": 0, "events": 0}, "checkpoint": None,
                 "final": False, "owner": owner}
        from labtrain.provenance import provenance

        builtin = {**provenance((snapshot or {}).get("chip")), "labtrain_version": __version__, "name": name,
                   "created": time.strftime("%Y-%m-%d %H:%M:%S"), "rule": rule, "backend": backend, "seed": seed}
        builtin |= units.attrs() if units is not None else {}
        clash = sorted(set(attrs or {}) & (set(builtin) | {"format"}))
        if clash:
            raise ValueError(f"attrs {clash} would replace built-in run-file attributes")
        attrs = dict(attrs or {}) | builtin
        immutable = {"experiment": (experiment_text, {"overrides": _dumps(overrides), "source": source}),
                     "snapshot": (_dumps(snapshot), {}), "task": (_dumps(task), {}),
                     "parameters/initial": (initial, {})}
        if units is not None:
            immutable |= units.datasets(n)
        img, _ = _build_image(None, attrs, immutable, n, capacity, {}, 1, state)
        _place_new(img, path)
        store = cls._open_v2(path, writable=True)
        store._owner = owner
        store._maps_plan = capacity["maps"] if plan.get("maps") else 0
        return store

    @classmethod
    def open(cls, path: str | Path, mode: str = "r") -> "RunStore":
        """Open a run file: ``"r"`` to read (also while another process writes it), ``"r+"`` to continue
        writing it, which takes its lease (:class:`LeaseError` if a live process holds it; a file of the
        previous format is converted first).  Raises :class:`StoreError` for an unusable file."""
        path = Path(path)
        if mode not in ("r", "r+"):
            raise ValueError(f"mode {mode!r}: expected 'r' or 'r+'")
        fmt = _format_of(path)
        if fmt == FORMAT_V1:
            if mode == "r":
                h5 = _h5_open(path)
                return cls(path, h5, version=1, state=_v1_state(h5))
            with cls.open(path, "r") as old:  # convert first: format 2 is what a writer writes
                _refuse_live_v1(old)
                try:
                    contents = old.contents()
                except (KeyError, OSError, ValueError) as exc:
                    raise StoreError(f"{path}: damaged ({_first_line(exc)}); run `labtrain repair {path}` to "
                                     f"truncate it to its last consistent state") from None
                old.rewrite(path, contents=contents)
        store = cls._open_v2(path, writable=mode == "r+")
        if mode == "r+":
            try:
                store.take_lease()
            except BaseException:
                store._owner = None
                store.close()
                raise
        return store

    @classmethod
    def _open_v2(cls, path: Path, writable: bool, tolerant: bool = False) -> "RunStore":
        """Open a format-2 file; ``tolerant``: rebuild a state record from the rows if both are torn."""
        h5 = _h5_open(path)
        try:
            layout = _Layout.of(h5)
        except (KeyError, StoreError) as exc:
            h5.close()
            raise StoreError(f"{path}: damaged run file structure ({_first_line(exc)}); it cannot be repaired") \
                from None
        try:
            fd = os.open(path, (os.O_RDWR if writable else os.O_RDONLY) | getattr(os, "O_BINARY", 0))
        except OSError as exc:
            h5.close()
            raise StoreError(f"{path}: cannot open ({exc.strerror})") from None
        store = cls(path, h5, version=2, fd=fd, layout=layout)
        store._writable = writable
        try:
            store._load_state()
        except StoreError:
            if not tolerant:
                store.close()
                raise
            store._rebuild_state()
        return store

    def _rebuild_state(self) -> None:
        """A state record for a file whose two records are torn: intact rows, newest intact checkpoint."""
        L = self._layout
        self.damage = "both state records torn; rebuilt from the rows"
        self._seq = 2
        self._state = {"status": "stopped", "message": "", "pid": 0, "total_steps": L.steps.rows,
                       "rows": {"steps": L.steps.rows, "eval": L.eval.rows, "history": 0, "maps": 0},
                       "checkpoint": None, "final": False, "owner": None}
        counts = self._state["rows"]

        def increasing(values: np.ndarray, consecutive: bool = False) -> int:
            """Rows up to where the step sequence breaks (a hole, or rows of an older pass)."""
            bad = np.flatnonzero(np.diff(values) != 1 if consecutive else np.diff(values) <= 0)
            return int(bad[0]) + 1 if len(bad) else len(values)

        steps = self._rows("steps")["step"]
        counts["steps"] = increasing(steps, consecutive=True)
        last = int(steps[counts["steps"] - 1]) if counts["steps"] else -1
        counts["eval"] = increasing(self._rows("eval")["step"])
        if L.events is not None:  # a log, not tied to steps: every row up to the first that fails its CRC
            counts["events"] = L.events.rows
            counts["events"] = len(self._rows("events"))
        for key, region in (("history", L.history_step), ("maps", L.maps.get("step"))):
            if region is not None:  # no CRC here: rows of steps beyond the step table are holes
                values = self._read(region, region.rows)
                n = increasing(values)
                counts[key] = int(np.sum(values[:n] <= last)) if last >= 0 else int(np.sum(values[:n] < 0))
        best = None  # the newest intact checkpoint of a step whose row is intact
        for slot in range(L.checkpoint.rows):
            got = self._slot(slot)
            if got is not None and got[0] <= last and (best is None or got[0] > best[1]):
                best = (slot, got[0])
        if best is not None:
            self._state["checkpoint"] = {"slot": best[0], "step": best[1]}

    def close(self) -> None:
        """Release the lease (if this process holds it) and the file.  Idempotent."""
        if self._fd is not None:
            if self._owner is not None:
                fault, self._fault = self._fault, None
                try:  # even after a write fault: the state record's blocks were written at creation
                    self._release_lease()
                except StoreError:
                    pass
                self._fault = fault
            os.close(self._fd)
            self._fd = None
        if self.h5.id.valid:
            self.h5.close()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ state
    def _read_slots(self) -> list[tuple[int, dict]]:
        region = self._layout.state
        fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))  # a fresh open: NFS close-to-open
        try:
            raw = _pread(fd, 2 * STATE_SLOT_BYTES, region.offset)
        finally:
            os.close(fd)
        slots = [_decode_state(raw[i * STATE_SLOT_BYTES:(i + 1) * STATE_SLOT_BYTES]) for i in (0, 1)]
        return sorted((s for s in slots if s is not None), key=lambda s: -s[0])

    def _load_state(self) -> None:
        slots = self._read_slots()
        if not slots:
            raise StoreError(f"{self.path}: both state records are torn or missing (damage a process crash "
                             f"cannot cause: power loss, a copy cut short); run `labtrain repair {self.path}`")
        self._seq, self._state = slots[0]

    def _commit(self, **changes: Any) -> None:
        """Write the next state record to the other slot: the single atomic step of every change."""
        state = {**self._state, **changes}
        state["message"] = str(state.get("message", ""))[:MESSAGE_MAX_CHARS]
        seq = self._seq + 1
        self._write("state", self._layout.state.offset + (seq % 2) * STATE_SLOT_BYTES, _encode_state(seq, state))
        self._seq, self._state = seq, state

    def _write(self, what: str, offset: int, data: bytes) -> None:
        if self._fd is None or not self._writable:
            raise StoreError(f"{self.path}: not open for writing")
        if self._fault is not None:
            raise self._fault
        try:
            _io_write(self._fd, data, offset, what)
        except OSError as exc:
            self._fault = resource_error(exc, self.path, what)
            raise self._fault from None

    def _fsync(self) -> None:
        """Flush the file to disk; the current checkpoint is then the durable one."""
        try:
            _io_fsync(self._fd, "fsync")
            self._durable_slot = (self._state.get("checkpoint") or {}).get("slot")
            self._last_fsync = time.monotonic()
        except OSError as exc:
            self._fault = resource_error(exc, self.path, "fsync")
            raise self._fault from None

    @property
    def owner(self) -> dict | None:
        """The lease holder recorded in the file (host, boot, pid, start, since, token), or None."""
        return self._state.get("owner") if self.version == 2 else None

    def take_lease(self, settle_s: float | None = None) -> None:
        """Become the file's single writer: compare-and-set of the lease in the state record.

        Raises :class:`LeaseError` naming the owner if a live process holds it (or wins the race);
        a lease of a dead process on this host is taken over.
        """
        self._load_state()
        owner = self._state.get("owner")
        if self._owner is not None and owner and owner.get("token") == self._owner["token"]:
            return
        if owner_alive(owner):
            if owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
                raise LeaseError(f"{self.path}: already open for writing in this process (close that run or "
                                 f"store first: Run.close() / RunStore.close())")
            raise LeaseError(f"{self.path}: in use by another process ({_describe_owner(owner)}); a run file is "
                             f"written by one process at a time")
        mine = _my_owner()
        self._commit(owner=mine, pid=os.getpid())
        self._fsync()
        time.sleep(LEASE_SETTLE_S if settle_s is None else settle_s)
        self._load_state()
        now = self._state.get("owner") or {}
        if now.get("token") != mine["token"]:
            raise LeaseError(f"{self.path}: in use by another process ({_describe_owner(now)}), which took it "
                             f"at the same time")
        self._owner = mine
        self.taken_over = owner
        if owner:
            log.warning("%s: took over the lease of %s (that process is gone)", self.path, _describe_owner(owner),
                        extra={"labtrain_event": "lease"})

    taken_over: dict | None = None
    """The stale lease (dead process) that :meth:`take_lease` replaced, if any."""

    def _release_lease(self) -> None:
        if self._owner is not None and (self._state.get("owner") or {}).get("token") == self._owner["token"]:
            self._commit(owner=None)
            self._fsync()
        self._owner = None

    def _check_writer(self) -> None:
        if self.version != 2 or not self._writable:
            raise StoreError(f"{self.path}: opened read-only")
        if self._owner is None:
            self.take_lease()

    # ------------------------------------------------------------ writing
    def _ensure(self, table: str, rows: int, maps: dict[str, np.ndarray] | None = None) -> None:
        """Grow the file (a re-laid-out copy renamed into place) so ``table`` holds ``rows`` rows;
        lay out ``/maps`` for ``maps`` (name -> one row) at their first recording."""
        cap, spec = self._layout.capacity, None
        if maps is not None and not self._layout.maps:
            spec = {k: (np.shape(v), self._maps_attrs.get(k, {})) for k, v in maps.items()}
            cap["maps"] = max(rows, self._maps_plan)
        elif maps is not None and set(maps) | {"step"} != set(self._layout.maps):
            raise StoreError(f"{self.path}: maps {sorted(maps)} differ from the recorded "
                             f"{sorted(set(self._layout.maps) - {'step'})}")
        elif rows <= cap[table]:
            return
        else:
            cap[table] = max(rows, 2 * cap[table], EVENT_ROWS if table == "events" else 0)
        log.info("%s: re-laid out (%s: room for %d rows)", self.path, table, cap[table])
        self.rewrite(self.path, capacity=cap, maps_spec=spec)

    def append_step(self, row: dict[str, float], parameters: np.ndarray | None = None) -> None:
        """Commit one completed step (``row`` has every :data:`STEP_COLUMNS` key) and its parameters."""
        self._check_writer()
        counts = dict(self._state["rows"])
        self._ensure("steps", counts["steps"] + 1)
        if parameters is not None:
            self._ensure("history", counts["history"] + 1)
        L = self._layout
        rec = np.zeros(1, STEP_DTYPE)
        for col in STEP_COLUMNS:
            rec[col] = row[col]
        rec["crc"] = _row_crc(rec)
        self._write("steps", L.steps.at(counts["steps"]), rec.tobytes())
        counts["steps"] += 1
        if parameters is not None:
            k = counts["history"]
            self._write("history", L.history.at(k), np.asarray(parameters, "<f8").tobytes())
            self._write("history_step", L.history_step.at(k), np.int64(row["step"]).astype("<i8").tobytes())
            counts["history"] += 1
        self._commit(rows=counts)

    def append_eval(self, row: dict[str, float]) -> None:
        """Commit one evaluation (``row`` has every :data:`EVAL_COLUMNS` key)."""
        self._check_writer()
        counts = dict(self._state["rows"])
        self._ensure("eval", counts["eval"] + 1)
        rec = np.zeros(1, EVAL_DTYPE)
        for col in EVAL_COLUMNS:
            rec[col] = row[col]
        rec["crc"] = _row_crc(rec)
        self._write("eval", self._layout.eval.at(counts["eval"]), rec.tobytes())
        counts["eval"] += 1
        self._commit(rows=counts)

    def append_event(self, row: dict[str, Any]) -> None:
        """Commit one run event: ``time_s`` (Unix time), ``step``, ``level``, ``kind``, ``source`` (logger),
        ``message`` (texts are cut to their columns' widths).  Beyond :data:`EVENT_ROWS_MAX` rows an event is
        only counted (state ``events_dropped``)."""
        self._check_writer()
        counts = dict(self._state["rows"])
        n = int(counts.get("events", 0))
        if n >= EVENT_ROWS_MAX:
            self._commit(events_dropped=int(self._state.get("events_dropped", 0)) + 1)
            return
        self._ensure("events", n + 1)
        rec = np.zeros(1, EVENT_DTYPE)
        rec["time_s"], rec["step"] = float(row.get("time_s", time.time())), int(row.get("step", -1))
        for col in ("level", "kind", "source", "message"):
            rec[col] = _utf8_cut(str(row.get(col, "")), EVENT_DTYPE[col].itemsize)
        rec["crc"] = _row_crc(rec)
        assert self._layout.events is not None  # laid out by _ensure
        self._write("events", self._layout.events.at(n), rec.tobytes())
        counts["events"] = n + 1
        self._commit(rows=counts)

    def append_maps(self, step: int, maps: dict[str, np.ndarray], attrs: dict[str, dict] | None = None) -> None:
        """Commit one recording of spatial maps (arrays of fixed shape per name) taken after ``step``.

        The ``/maps`` datasets are laid out at the first call (``attrs[name]``, e.g. ``unit`` and
        ``doc``, become their attributes).
        """
        self._check_writer()
        if attrs:
            self._maps_attrs = dict(attrs)
        counts = dict(self._state["rows"])
        self._ensure("maps", counts["maps"] + 1, maps)
        L = self._layout
        for name, value in maps.items():
            value = np.asarray(value, "<f8")
            if value.shape != L.maps[name].shape:
                raise StoreError(f"{self.path}: map {name!r} has shape {value.shape}, the file {L.maps[name].shape}")
            self._write(f"maps/{name}", L.maps[name].at(counts["maps"]), value.tobytes())
        self._write("maps/step", L.maps["step"].at(counts["maps"]), np.int64(step).astype("<i8").tobytes())
        counts["maps"] += 1
        self._commit(rows=counts)

    def write_checkpoint(self, step: int, parameters: np.ndarray, optimizer_state: dict[str, np.ndarray]) -> None:
        """Store resumable state after ``step`` in a free slot, then commit it: the committed checkpoint and
        the last fsynced one stay intact until this one is complete (and fsynced, at most
        :data:`DURABLE_INTERVAL_S` later)."""
        self._check_writer()
        blob = _encode_checkpoint(step, parameters, optimizer_state)
        if len(blob) > self._layout.checkpoint.row_bytes:
            self.rewrite(self.path, capacity=dict(self._layout.capacity, checkpoint_bytes=2 * len(blob)))
        keep = {(self._state.get("checkpoint") or {}).get("slot"), self._durable_slot}
        slot = min(k for k in range(self._layout.checkpoint.rows) if k not in keep)
        self._write("checkpoint", self._layout.checkpoint.at(slot), blob)
        self._commit(checkpoint={"slot": slot, "step": int(step)})
        if time.monotonic() - self._last_fsync >= DURABLE_INTERVAL_S:
            self._fsync()

    def set_status(self, status: str, message: str = "") -> None:
        """Commit the run's status (``running paused stopped completed failed``) and message."""
        self._check_writer()
        self._commit(status=status, message=message, pid=os.getpid())
        self._fsync()

    def set_total_steps(self, total_steps: int) -> None:
        """Commit the run's planned length (resuming with more epochs)."""
        self._check_writer()
        self._commit(total_steps=int(total_steps))

    def write_final(self, parameters: np.ndarray) -> None:
        """Store the parameters at the end of a completed run."""
        self._check_writer()
        self._write("final", self._layout.final.offset, np.asarray(parameters, "<f8").tobytes())
        self._commit(final=True)

    def truncate_after(self, step: int) -> None:
        """Drop every row recorded after ``step`` (used when resuming from a checkpoint)."""
        self._check_writer()
        counts = dict(self._state["rows"])
        counts["steps"] = int(np.sum(self.table("steps")["step"] <= step))
        counts["eval"] = int(np.sum(self.table("eval")["step"] <= step))
        counts["history"] = int(np.sum(self.parameter_history()[0] <= step))
        counts["maps"] = int(np.sum(self.maps().get("step", np.zeros(0)) <= step))
        self._commit(rows=counts)

    # ------------------------------------------------------------ listener
    def __call__(self, event: Any) -> None:
        """Record a run event (the run file is a listener like the progress bar and the GUI).

        After a write fault, data events are ignored (the file keeps its last commit) and only the
        final status is still attempted.
        """
        kind, data = event.kind, event.data
        if self._fault is not None:
            if kind == "stop":
                self._record_end(data)
            return
        if kind == "start":
            self._check_writer()
            self._maps_plan = int(data.get("rows", {}).get("maps", 0))
            self._maps_attrs = dict(data.get("maps_attrs") or {})
            plan = data.get("rows", {})
            for table in ("steps", "eval", "history"):
                if table in plan:
                    self._ensure(table, int(plan[table]))
            self._commit(status="running", message="", pid=os.getpid(), total_steps=int(data["total_steps"]))
        elif kind == "step":
            self.append_step({"step": event.step, "epoch": event.epoch, "time_s": data["time_s"],
                              "loss": data["loss"], "n_phases": data["n_phases"]},
                             data["parameters"] if data.get("record_parameters") else None)
        elif kind == "eval":
            self.append_eval(data)
        elif kind == "maps":
            self.append_maps(event.step, data, self._maps_attrs)
        elif kind == "checkpoint":
            self.write_checkpoint(event.step, data["parameters"], data["optimizer_state"])
        elif kind == "log":
            self.append_event({**data, "step": event.step})
        elif kind == "pause":
            self.set_status("paused")
        elif kind == "resume":
            self.set_status("running")
        elif kind == "stop":
            self._record_end(data)

    def _record_end(self, data: dict) -> None:
        """Final status (and parameters of a completed run); after a write fault, as much as still fits."""
        if self._owner is None:  # never became the writer (e.g. another process holds the lease)
            return
        status, message = data["status"], data.get("message", "")
        failed = None
        if status == "completed" and self._fault is None:
            try:
                self.write_final(data["parameters"])
            except StoreWriteError as exc:  # recorded below, then raised: the run did not end cleanly
                status, message, failed = "failed", str(exc), exc
        fault, self._fault = self._fault, None
        try:
            self._commit(status=status, message=message, pid=os.getpid(), owner=None)
            self._owner = None
            self._fsync()
        except StoreError:
            pass  # the disk refuses even the state record: the file keeps its last commit
        finally:
            self._fault = self._fault or fault
        if failed is not None:
            raise failed

    # ------------------------------------------------------------ reading
    @property
    def attrs(self) -> dict[str, Any]:
        """Root attributes plus the current status, message, pid and total_steps."""
        a = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in self.h5.attrs.items()}
        if self.version == 2:
            a.update({k: self._state[k] for k in ("status", "message", "pid", "total_steps")})
        return a

    def refresh(self) -> None:
        """Re-read the state record (a reader following a live run)."""
        if self.version == 2:
            self._load_state()

    def _stored(self, what: str, read: Callable[[], Any], table: bool = False) -> Any:
        """A stored record; a missing or damaged one is a one-line :class:`StoreError` naming the run file
        (``table``: a JSON object)."""
        try:
            value = read()
        except (KeyError, OSError, ValueError, TypeError, UnicodeDecodeError) as exc:
            raise StoreError(f"{self.path}: the run file's {what} is missing or damaged ({_first_line(exc)})") \
                from None
        if table and not isinstance(value, dict):
            raise StoreError(f"{self.path}: the run file's {what} is damaged (not a table)")
        return value

    @property
    def experiment_text(self) -> str:
        return self._stored("experiment", lambda: str(self.h5["experiment"].asstr()[()]))

    @property
    def overrides(self) -> dict:
        return self._stored("overrides", lambda: json.loads(self.h5["experiment"].attrs["overrides"]), table=True)

    @property
    def source(self) -> str:
        return self._stored("experiment source", lambda: str(self.h5["experiment"].attrs["source"]))

    @property
    def snapshot(self) -> dict:
        return self._stored("snapshot", lambda: json.loads(self.h5["snapshot"].asstr()[()]), table=True)

    @property
    def task(self) -> dict:
        return self._stored("task record", lambda: json.loads(self.h5["task"].asstr()[()]), table=True)

    def _read(self, region: _Region, rows: int, start: int = 0) -> np.ndarray:
        raw = _pread(self._fd, rows * region.row_bytes, region.offset + start * region.row_bytes) if rows else b""
        return np.frombuffer(raw, region.dtype).reshape(rows, *region.shape).copy()

    def _rows(self, table: str) -> np.ndarray:
        region = getattr(self._layout, table)
        n = min(int(self._state["rows"].get(table, 0)), region.rows)
        rec = self._read(region, n)
        for i in range(n):  # whole rows only: stop at the first that fails its CRC
            if int(rec["crc"][i]) != _row_crc(rec[i:i + 1]):
                self.damage = self.damage or f"/{table} row {i} fails its CRC (written but not flushed?)"
                return rec[:i]
        return rec

    def table(self, group: str) -> dict[str, np.ndarray]:
        """Columns of ``steps`` or ``eval`` as arrays (committed rows only)."""
        if group not in ("steps", "eval"):
            raise KeyError(f"table {group!r}: expected 'steps' or 'eval'")
        if self.version == 1:
            return {k: ds[:] for k, ds in self.h5[group].items()}
        rec = self._rows(group)
        return {col: rec[col].copy() for col in (STEP_COLUMNS if group == "steps" else EVAL_COLUMNS)}

    def parameters(self, which: str = "final") -> np.ndarray | None:
        """``initial`` or ``final`` parameters (None: the run has not completed)."""
        if self.version == 2 and which == "final":
            region = self._layout.final
            return self._read(region, region.rows) if self._state.get("final") else None
        p = self.h5["parameters"]
        return p[which][:] if which in p else None

    def parameter_history(self) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, rows)``: the parameters recorded after each of ``steps``."""
        if self.version == 1:
            return self.h5["parameters/history_step"][:], self.h5["parameters/history"][:]
        n = int(self._state["rows"]["history"])
        return self._read(self._layout.history_step, n), self._read(self._layout.history, n)

    def maps(self) -> dict[str, np.ndarray]:
        """Every stored map (``step`` included) as arrays; empty if the run recorded none."""
        if self.version == 1:
            return {k: ds[:] for k, ds in self.h5["maps"].items()} if "maps" in self.h5 else {}
        n = int(self._state["rows"]["maps"])
        return {name: self._read(region, n) for name, region in self._layout.maps.items()}

    def events(self) -> dict[str, np.ndarray]:
        """The run's events (committed rows; empty for files without ``/events``) as columns: ``time_s``,
        ``step``, ``level``, ``kind``, ``source``, ``message`` (texts as ``str`` arrays)."""
        if self.version == 2 and self._layout.events is not None:
            rec = self._rows("events")
        else:
            rec = np.zeros(0, EVENT_DTYPE)
        return _event_columns(rec)

    def _slot(self, slot: int) -> tuple[int, np.ndarray, dict[str, np.ndarray]] | None:
        region = self._layout.checkpoint
        return _decode_checkpoint(_pread(self._fd, region.row_bytes, region.at(slot)))

    def latest_checkpoint(self) -> tuple[int, np.ndarray, dict[str, np.ndarray]] | None:
        """``(step, parameters, optimizer_state)`` of the newest complete checkpoint, or None.

        If the committed one fails its checksum -- only possible after damage a process crash cannot
        do (power loss, a copy cut short) -- the newest intact one whose step is stored is used (noted
        in :attr:`damage`); if there is none, :class:`StoreError`.
        """
        if self.version == 1:
            cp = self.h5["checkpoint"]
            slot = int(cp.attrs["latest_slot"])
            if slot < 0:
                return None
            g = cp[f"slot{slot}"]
            return int(g.attrs["step"]), g["parameters"][:], {k: ds[()] for k, ds in g["optimizer"].items()}
        pointer = self._state.get("checkpoint")
        if pointer is None:
            return None
        got = self._slot(int(pointer["slot"]))
        if got is not None and got[0] == int(pointer["step"]):
            return got
        steps = self.table("steps")["step"]
        others = [self._slot(k) for k in range(self._layout.checkpoint.rows) if k != int(pointer["slot"])]
        others = [o for o in others if o is not None and len(steps) and o[0] <= steps[-1]]
        if others:
            best = max(others, key=lambda o: o[0])
            self.damage = self.damage or f"checkpoint after step {pointer['step']} is torn; using the one after " \
                                         f"step {best[0]}"
            return best
        raise StoreError(f"{self.path}: checkpoint after step {pointer['step']} fails its checksum and no older one "
                         f"is intact; run `labtrain repair {self.path}` to truncate it to its last consistent state")

    # ------------------------------------------------------------ re-layout, repair
    def contents(self, upto_step: int | None = None, tolerant: bool = False) -> "RunContents":
        """Every committed row, the final parameters and the newest intact checkpoint, in memory.

        ``upto_step`` keeps rows of steps up to it only; ``tolerant`` turns unreadable parts into
        empty ones (listed in ``notes``) instead of raising -- for salvaging a damaged file.
        """
        notes: list[str] = []

        def get(what: str, read: Callable[[], Any], empty: Any) -> Any:
            try:
                return read()
            except (StoreError, KeyError, OSError, ValueError) as exc:
                if not tolerant:
                    raise
                notes.append(f"unreadable {what} dropped ({_first_line(exc)})")
                return empty

        empty_steps = {c: np.zeros(0, STEP_DTYPE[c]) for c in STEP_COLUMNS}
        empty_eval = {c: np.zeros(0, EVAL_DTYPE[c]) for c in EVAL_COLUMNS}
        n = len(self.h5["parameters/initial"])
        c = RunContents(
            steps=get("step table", lambda: self.table("steps"), empty_steps),
            eval=get("evaluation table", lambda: self.table("eval"), empty_eval),
            history=get("parameter history", self.parameter_history, (np.zeros(0, np.int64), np.zeros((0, n)))),
            maps=get("maps", self.maps, {}),
            final=get("final parameters", lambda: self.parameters("final"), None),
            checkpoint=get("checkpoint", self.latest_checkpoint, None), notes=notes,
            events=get("events", self.events, _event_columns(np.zeros(0, EVENT_DTYPE))))
        if self.damage:
            notes.append(self.damage)
        if upto_step is not None:
            c.keep_upto(upto_step)
        return c

    def rewrite(self, target: Path, *, contents: "RunContents | None" = None, capacity: dict[str, int] | None = None,
                maps_spec: dict[str, tuple[tuple[int, ...], dict]] | None = None, state: dict | None = None) -> None:
        """Write this run as a format-2 file into a sibling file that is flushed and renamed onto ``target``.

        ``contents`` (default: everything committed) with ``capacity`` rows per table; ``state``
        overrides fields of the state record.  Used to grow a file, to lay out ``/maps``, to repair a
        damaged file and to convert the previous format.  A writer continues on the new file; a fault
        leaves ``target`` as it was.
        """
        c = contents if contents is not None else self.contents()
        initial = self.h5["parameters/initial"][:]
        n = len(initial)
        if self.version == 2:
            cap, st = dict(self._layout.capacity), dict(self._state)
        else:
            a = self.attrs
            total = int(a.get("total_steps", len(c.steps["step"])))
            cap = {"steps": total, "eval": total + 1, "history": total, "maps": len(c.maps.get("step", ())) + total,
                   "checkpoint_bytes": _checkpoint_bytes(n)}
            st = {"status": a.get("status", "stopped"), "message": a.get("message", ""), "pid": a.get("pid", 0),
                  "total_steps": total, "owner": None}
        cap.update(capacity or {})
        if maps_spec is None and c.maps:
            maps_spec = {k: (v.shape[1:], dict(self.h5["maps"][k].attrs)) for k, v in c.maps.items() if k != "step"}
        events = _event_rows(c.events)
        cap["events"] = cap.get("events") or EVENT_ROWS
        rows = {"steps": len(c.steps["step"]), "eval": len(c.eval["step"]), "history": len(c.history[0]),
                "maps": len(c.maps.get("step", ())), "events": len(events)}
        for key, k in rows.items():
            cap[key] = max(1, cap[key], k)
        blob = None if c.checkpoint is None else _encode_checkpoint(*c.checkpoint)
        if blob is not None:
            cap["checkpoint_bytes"] = max(cap["checkpoint_bytes"], len(blob))
        st.update(rows=rows, final=c.final is not None,
                  checkpoint=None if c.checkpoint is None else {"slot": 0, "step": int(c.checkpoint[0])})
        st.update(state or {})
        root = {k: v for k, v in self.h5.attrs.items() if k not in _V1_MUTABLE_ATTRS}
        seq = self._seq + 1
        img, layout = _build_image(self.h5, root, {}, n, cap, maps_spec or {}, seq, st)
        tmp = target.with_name(f"{target.name}.rewrite-{os.getpid()}")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o644)
        try:
            img.write_to(fd, target)
            try:
                def put(region: _Region, data: np.ndarray) -> None:
                    if len(data):
                        _io_write(fd, np.ascontiguousarray(data, region.dtype).tobytes(), region.offset, "rewrite")

                put(layout.steps, _with_crc(c.steps, STEP_DTYPE, STEP_COLUMNS))
                put(layout.eval, _with_crc(c.eval, EVAL_DTYPE, EVAL_COLUMNS))
                if layout.events is not None:
                    put(layout.events, events)
                put(layout.history_step, c.history[0])
                put(layout.history, c.history[1])
                if c.final is not None:
                    put(layout.final, c.final)
                for name, values in c.maps.items():
                    put(layout.maps[name], values)
                if blob is not None:
                    _io_write(fd, blob, layout.checkpoint.at(0), "rewrite")
                _io_fsync(fd, "rewrite")
            except OSError as exc:
                raise resource_error(exc, target, "the re-laid-out run file") from None
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(tmp, target)
        _fsync_dir(target)
        if self.version == 2 and target == self.path:
            self._reopen()

    def _reopen(self) -> None:
        writable, owner = self._writable, self._owner
        if self._fd is not None:
            os.close(self._fd)
        self.h5.close()
        fresh = RunStore._open_v2(self.path, writable)
        self.h5, self._fd, self._layout = fresh.h5, fresh._fd, fresh._layout
        self._seq, self._state, self._owner = fresh._seq, fresh._state, owner
        self._durable_slot = (self._state.get("checkpoint") or {}).get("slot")  # the re-layout was fsynced
        fresh._fd, fresh._owner = None, None


@dataclass
class RunUnits:
    """Units a run file declares: the rule's loss, the chip's outputs and parameters (UDUNITS spelling, ``"1"``
    for dimensionless; see :meth:`labtrain.chip.base.Chip.parameter_units`)."""

    loss: str
    output: str
    parameter_name: str
    parameters: list[str]
    labels: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, chip: Any, estimator: Any) -> "RunUnits":
        """What ``chip`` (output_unit, parameter_spec, parameter_units, parameter_labels) and ``estimator``
        (loss_unit) declare."""
        return cls(loss=str(getattr(estimator, "loss_unit", "V^2")), output=str(chip.output_unit),
                   parameter_name=str(chip.parameter_spec.name), parameters=[str(u) for u in chip.parameter_units()],
                   labels=[str(x) for x in chip.parameter_labels()])

    @property
    def parameter(self) -> str:
        """The one unit of every parameter, or ``"mixed"``."""
        return self.parameters[0] if len(set(self.parameters)) == 1 else "mixed"

    def attrs(self) -> dict[str, str]:
        return {"loss_units": self.loss, "output_units": self.output, "parameter_name": self.parameter_name,
                "parameter_units": self.parameter if self.parameters else ""}

    def datasets(self, n: int) -> dict[str, tuple[Any, dict]]:
        out: dict[str, tuple[Any, dict]] = {}
        if len(set(self.parameters)) > 1 and len(self.parameters) == n:
            out["parameters/units"] = (np.array(self.parameters, dtype=h5py.string_dtype()),
                                       {"doc": "unit of every parameter"})
        if self.labels and len(self.labels) == n:
            out["parameters/labels"] = (np.array(self.labels, dtype=h5py.string_dtype()),
                                        {"doc": "name of every parameter"})
        return out


@dataclass
class RunContents:
    """A run's committed data in memory (see :meth:`RunStore.contents`)."""

    steps: dict[str, np.ndarray]
    eval: dict[str, np.ndarray]
    history: tuple[np.ndarray, np.ndarray]
    maps: dict[str, np.ndarray]
    final: np.ndarray | None
    checkpoint: tuple[int, np.ndarray, dict[str, np.ndarray]] | None
    notes: list[str] = field(default_factory=list)
    events: dict[str, np.ndarray] | None = None  # a log: kept whole by keep_upto

    def keep_upto(self, step: int) -> None:
        """Drop rows of steps after ``step``."""
        for name in ("steps", "eval"):
            table = getattr(self, name)
            keep = table["step"] <= step
            setattr(self, name, {k: v[keep] for k, v in table.items()})
        keep = self.history[0] <= step
        self.history = (self.history[0][keep], self.history[1][keep])
        if self.maps:
            keep = self.maps["step"] <= step
            self.maps = {k: v[keep] for k, v in self.maps.items()}


def _with_crc(table: dict[str, np.ndarray], dtype: np.dtype, columns: tuple[str, ...]) -> np.ndarray:
    n = len(table["step"])
    rec = np.zeros(n, dtype)
    for col in columns:
        rec[col] = table[col]
    for i in range(n):
        rec["crc"][i] = _row_crc(rec[i:i + 1])
    return rec


def _utf8_cut(text: str, size: int) -> bytes:
    """``text`` as UTF-8 in at most ``size`` bytes, cut at a character boundary."""
    data = text.encode("utf-8", "replace")
    return data if len(data) <= size else data[:size].decode("utf-8", "ignore").encode()


def _event_columns(rec: np.ndarray) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {"time_s": rec["time_s"].copy(), "step": rec["step"].copy()}
    for col in ("level", "kind", "source", "message"):
        out[col] = np.array([v.decode("utf-8", "replace") for v in rec[col]], dtype=str)
    return out


def _event_rows(events: dict[str, np.ndarray] | None) -> np.ndarray:
    """Event columns (as :meth:`RunStore.events` returns them) as ``/events`` rows with their CRCs."""
    if not events:
        return np.zeros(0, EVENT_DTYPE)
    n = len(events["step"])
    rec = np.zeros(n, EVENT_DTYPE)
    for i in range(n):
        rec["time_s"][i], rec["step"][i] = events["time_s"][i], events["step"][i]
        for col in ("level", "kind", "source", "message"):
            rec[col][i] = _utf8_cut(str(events[col][i]), EVENT_DTYPE[col].itemsize)
        rec["crc"][i] = _row_crc(rec[i:i + 1])
    return rec


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=_json_default, sort_keys=True)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in JSON")


def _place_new(img: _SparseImage, path: Path) -> None:
    """Put a new file's image on disk as ``path`` atomically (sibling file, fsync, link/rename)."""
    tmp = path.with_name(f"{path.name}.creating-{os.getpid()}")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o644)
    try:
        img.write_to(fd, path)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        os.link(tmp, path)  # fails if path exists (another run took the name): never overwrite a run
    except FileExistsError:
        tmp.unlink(missing_ok=True)
        raise
    except OSError:  # a filesystem without hard links
        if path.exists():
            tmp.unlink(missing_ok=True)
            raise FileExistsError(f"{path}: run file exists") from None
        os.replace(tmp, path)
    else:
        tmp.unlink()
    _fsync_dir(path)


def _format_of(path: Path) -> str:
    if path.is_dir():
        raise StoreError(f"{path}: is a folder, not a run file (labtrain runs {path} lists the run files in it)")
    if path.exists() and not path.is_file():
        raise StoreError(f"{path}: not a regular file (a labtrain run file is an HDF5 file)")
    if not path.is_file():
        raise StoreError(f"{path}: run file not found")
    if not h5py.is_hdf5(path):
        raise StoreError(f"{path}: not an HDF5 file (a labtrain run file is HDF5)")
    h5 = _h5_open(path)
    try:
        fmt = h5.attrs.get("format")
    finally:
        h5.close()
    if fmt not in (FORMAT, FORMAT_V1):
        raise StoreError(f"{path}: not a labtrain run file" if fmt is None or not str(fmt).startswith("labtrain-run")
                         else f"{path}: run-file format {fmt!r} is newer than this labtrain reads ({FORMAT})")
    return str(fmt)


def _h5_open(path: Path) -> h5py.File:
    try:
        # Never HDF5's file lock: format-2 files are written with plain writes under the run's lease.
        return h5py.File(path, "r", locking=False)
    except OSError as exc:
        raise StoreError(f"{path}: cannot open as HDF5 ({_first_line(exc)}); it cannot be repaired") from None


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _v1_state(h5: h5py.File) -> dict:
    a = h5.attrs
    return {k: (a[k].item() if isinstance(a[k], np.generic) else a[k]) for k in ("status", "message", "pid",
                                                                             "total_steps") if k in a}


def _refuse_live_v1(store: RunStore) -> None:
    a = store.attrs
    if a.get("status") == "running" and _pid_alive(int(a.get("pid", -1))) and int(a.get("pid", -1)) != os.getpid():
        raise LeaseError(f"{store.path}: in use by another process (pid {a.get('pid')}); a run file is written by "
                         f"one process at a time")


# ------------------------------------------------------------------ summaries, repair
def read_summary(path: str | Path) -> dict[str, Any]:
    """Name, date, rule, backend, status, steps done and final metrics of a run file.

    ``status`` is ``crashed`` for a file left ``running`` by a process that is gone.
    """
    with RunStore.open(path) as store:
        a = store.attrs
        try:
            steps = store.table("steps")["step"]
            ev = store.table("eval")
        except (KeyError, OSError, ValueError) as exc:  # HDF5 metadata damaged (previous format)
            raise StoreError(f"{path}: damaged ({_first_line(exc)}); run `labtrain repair {path}`") from None
        status = a["status"]
        if status == "running":
            if store.version == 2:
                if not owner_alive(store.owner):
                    status = "crashed"
            elif a.get("pid") != os.getpid() and not _pid_alive(int(a.get("pid", -1))):
                status = "crashed"
        last = {k: (float(v[-1]) if len(v) else float("nan")) for k, v in ev.items()}
        return {
            "path": str(path), "name": a["name"], "created": a["created"], "rule": a["rule"],
            "backend": a["backend"], "status": status, "message": a.get("message", ""),
            "steps_done": int(steps[-1]) + 1 if len(steps) else 0, "total_steps": int(a["total_steps"]),
            "train_loss": last.get("train_loss", float("nan")), "test_loss": last.get("test_loss", float("nan")),
            "train_accuracy": last.get("train_accuracy", float("nan")),
            "test_accuracy": last.get("test_accuracy", float("nan")),
            "seed": a["seed"], "labtrain_version": a["labtrain_version"], "overrides": store.overrides,
            "sweep": a.get("sweep", ""),
        }


def _unreadable(path: Path, reason: str) -> dict[str, Any]:
    nan = float("nan")
    return {"path": str(path), "name": path.stem, "created": "", "rule": "-", "backend": "-", "status": "unreadable",
            "message": reason, "steps_done": 0, "total_steps": 0, "train_loss": nan, "test_loss": nan,
            "train_accuracy": nan, "test_accuracy": nan, "seed": None, "labtrain_version": "", "overrides": {},
            "sweep": ""}


def list_runs(directory: str | Path) -> list[dict[str, Any]]:
    """Summaries of every run file under ``directory`` (newest first).

    A damaged or unreadable ``.h5`` file is listed with status ``unreadable`` and the reason as its
    message; HDF5 files that are not labtrain runs (e.g. surrogate models) are left out.
    """
    rows = []
    for p in sorted(Path(directory).rglob("*.h5")):
        try:
            rows.append(read_summary(p))
        except StoreError as exc:
            text = str(exc)
            if text.endswith("not a labtrain run file"):
                continue
            rows.append(_unreadable(p, text))
        except (OSError, KeyError, ValueError) as exc:
            rows.append(_unreadable(p, f"{p}: {type(exc).__name__}: {_first_line(exc)}"))
    return sorted(rows, key=lambda r: r["created"], reverse=True)


def repair_run(path: str | Path, force: bool = False) -> str:
    """Truncate a run file to its last consistent state and return one line saying what was done.

    Keeps every intact row up to the newest intact checkpoint (all rows without one: the run then
    restarts from the beginning), and releases the lease of a dead process.  A file of the previous
    format is converted (salvaging what HDF5 can still read).  Refuses (:class:`LeaseError`) while a
    live process owns the file; ``force`` takes over a lease held on another host, which this host
    cannot check.
    """
    path = Path(path)
    if _format_of(path) == FORMAT_V1:
        with RunStore.open(path, "r") as old:
            _refuse_live_v1(old)
            contents = old.contents(tolerant=True)
            if contents.checkpoint is not None:
                contents.keep_upto(contents.checkpoint[0])
            status = old.attrs.get("status", "stopped")
            old.rewrite(path, contents=contents, state={"owner": None, "status": "stopped" if status == "running"
                                                        else status})
        notes = "; ".join(contents.notes)
        return (f"{path}: converted from {FORMAT_V1} to {FORMAT}" + (f" ({notes})" if notes else "") +
                f"; {len(contents.steps['step'])} steps kept" + _resumes(contents))
    with RunStore._open_v2(path, writable=True, tolerant=True) as store:
        owner = store.owner
        here = owner is None or owner.get("host") == socket.gethostname()
        if owner_alive(owner) and not (force and not here):
            raise LeaseError(f"{path}: in use by another process ({_describe_owner(owner)}); stop it first"
                             + ("" if here else ", or pass --force if it is gone"))
        before = int(store._state["rows"]["steps"])
        contents = store.contents(tolerant=True)
        if not contents.notes:
            if owner is None:
                return f"{path}: consistent ({before} steps, format {FORMAT}); nothing to repair"
            store._owner = owner
            store._release_lease()
            return f"{path}: consistent ({before} steps); lease of {_describe_owner(owner)} released"
        if contents.checkpoint is not None:
            contents.keep_upto(contents.checkpoint[0])
        status = store._state.get("status", "stopped")
        store._owner = None
        store.rewrite(path, contents=contents, state={"owner": None, "message": "repaired: " + contents.notes[0],
                                                      "status": "stopped" if status == "running" else status})
    return (f"{path}: repaired ({'; '.join(contents.notes)}); {len(contents.steps['step'])} of {before} steps kept"
            + _resumes(contents))


def _resumes(contents: RunContents) -> str:
    cp = contents.checkpoint
    return (f"; resumes after step {cp[0]}" if cp is not None else
            "; no intact checkpoint: a resume starts from the beginning (the rows stay readable until then)")
