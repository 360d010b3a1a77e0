"""Hostile input corpus (issue 12, "Bad input"): hundreds of bad experiment files, edge lists, run files,
outputs and arguments, each refused the same way.

Every case asserts: exit code 2, at most 3 lines on stderr, no ``Traceback``, and nothing left behind
(the case's folder -- run folder, run file, output targets -- is byte-for-byte as before).  For every
experiment-file case, ``labtrain check FILE`` also returns 2 (check and run agree).

The cases: every numeric key of every chip kind's schema at NaN / inf / below its range / above its
range / the wrong type, every string key with a bad choice or the wrong type (generated from
:func:`labtrain.config.schema_for`); malformed TOML; contradictory settings; memory far beyond any
machine; garbage edge-list and MNIST files; corrupted, truncated, foreign and tampered run files given
to show / resume / export / gradcheck / repair; unwritable outputs; command-line flags out of range;
``--set`` with unknown keys or bad values.  All in-process (``labtrain.cli.main``), one subprocess case.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import struct
import subprocess
import sys
import tomllib
from pathlib import Path

import h5py
import numpy as np
import pytest

from cli_helpers import cli
from labtrain.config import BASE_SCHEMA, schema_for

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("resistor_network", "xy", "nonreciprocal", "nonlinear_resistor", "dnpu")
DNPU = (ROOT / "examples" / "dnpu_xor_hge.toml").read_text().replace("epochs = 100", "epochs = 1") \
    .replace("eval_every = 10", "eval_every = 0")
BASES = {kind: f'[chip]\ntype = "{kind}"\n[run]\nepochs = 1\n' for kind in KINDS}
BASES["dnpu"] = DNPU
RESISTOR = BASES["resistor_network"]


# ------------------------------------------------------------------ helpers
def _tree(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder`` with a digest of its bytes (folders: 'dir')."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink() or not (p.is_file() or p.is_dir()):
            out[rel] = "other"
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha1(p.read_bytes()).hexdigest()
    return out


def assert_refused(code, out: str, err: str, *needles: str) -> None:
    assert code == 2, (code, out[-2000:], err[-3000:])
    assert "Traceback" not in err and "Traceback" not in out, err
    lines = err.strip().splitlines()
    assert 1 <= len(lines) <= 3, f"{len(lines)} lines on stderr:\n{err}"
    assert "error" in err, err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err}"


def refused(argv, capsys, folder: Path, *needles: str) -> str:
    """``labtrain argv``: refused (exit 2, <= 3 lines, no traceback) and ``folder`` left as it was."""
    before = _tree(folder)
    code, out, err = cli(argv, capsys)
    assert_refused(code, out, err, *needles)
    assert _tree(folder) == before, "a file was written, changed or removed for bad input"
    return err


def refused_file(text: str | bytes, tmp_path: Path, capsys, *needles: str, setup=None, out: bool = True) -> None:
    """An experiment file: ``run`` and ``check`` both refuse it, nothing is written (``out``: ``run`` with
    ``--out`` into the case's folder; False where the case is about ``[run] out_dir`` itself)."""
    f = tmp_path / "exp.toml"
    (f.write_bytes if isinstance(text, bytes) else f.write_text)(text)
    if setup is not None:
        setup(tmp_path)
    err = refused(["run", f, *(["--out", tmp_path / "runs"] if out else []), "-q"], capsys, tmp_path, *needles)
    err2 = refused(["check", f], capsys, tmp_path, *needles)
    same = lambda e: re.sub(r"this machine has [^,;]* available", "", e.split("error:", 1)[-1])  # noqa: E731
    assert same(err2) == same(err), (err, err2)


def _val(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, float):
        if v != v:
            return "nan"
        if v in (float("inf"), float("-inf")):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_val(x) for x in v) + "]"
    return repr(v)


def with_keys(base: str, section: str, **values) -> str:
    """``base`` with ``[section] key = value`` set (as TOML)."""
    data = tomllib.loads(base)
    data.setdefault(section, {}).update(values)
    lines = []
    for sec, keys in data.items():
        lines.append(f"[{sec}]")
        lines += [f"{k} = {_val(v)}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


# ------------------------------------------------- schema-generated values
def _bad_values(spec) -> list[tuple[str, object]]:
    """(label, value) pairs that violate ``spec`` (a :class:`labtrain.schema.Field`)."""
    kind = spec.kind
    if kind == "bool":
        return [("string", "yes"), ("number", 1)]
    if kind == "str":
        out = [("number", 3), ("list", ["a"])]
        if spec.choices:
            out.append(("bad-choice", "no_such_choice"))
        return out
    if kind == "strs":
        return [("scalar", "Dev1/ao0"), ("numbers", [1, 2]), ("empty-string", [""])]
    scalar = kind in ("int", "float")
    out: list[tuple[str, object]] = [("nan", float("nan")), ("inf", float("inf")), ("-inf", float("-inf")),
                                     ("string", "1.0"), ("bool", True)]
    if kind.startswith("int"):
        out.append(("fraction", 1.5))
    if spec.low is not None:
        below = spec.low if spec.low_open else (spec.low - 1 if kind.startswith("int") else spec.low - abs(spec.low)
                                                 * 0.5 - 1.0)
        out.append(("zero" if below == 0 else "below", int(below) if kind.startswith("int") else float(below)))
        if spec.low >= 0 and below != -1:
            out.append(("negative", -1 if kind.startswith("int") else -1.0))
    if spec.high is not None:
        out.append(("huge", int(spec.high) * 10 + 1 if kind.startswith("int") else 1e300))
    if not scalar:
        out = [(f"entry-{label}", [value]) for label, value in out] + [("scalar", 1.0 if kind == "floats" else 1),
                                                                      ("string", "[1, 2]")]
    return out


def _key_cases():
    """One case per (key, bad value); shared keys on resistor_network, each kind's own keys on that kind."""
    seen = set()
    for kind in KINDS:
        for section, fields in schema_for(kind).items():
            for key, spec in fields.items():
                if (section, key) in seen or (kind != KINDS[0] and key in BASE_SCHEMA.get(section, {})):
                    continue
                if section == "chip" and key == "type":
                    continue
                seen.add((section, key))
                for label, value in _bad_values(spec):
                    yield pytest.param(kind, section, key, value, id=f"{kind}-{section}.{key}-{label}")


KEY_CASES = list(_key_cases())


@pytest.mark.parametrize("kind, section, key, value", KEY_CASES)
def test_bad_value_of_every_key(tmp_path, capsys, kind, section, key, value):
    refused_file(with_keys(BASES[kind], section, **{key: value}), tmp_path, capsys, f"[{section}]", key,
                 out=key != "out_dir")


def test_good_bases_are_good(tmp_path, capsys):
    """Each kind's base file checks OK, so every case above fails for its own reason only."""
    for kind, text in BASES.items():
        f = tmp_path / f"{kind}.toml"
        f.write_text(text)
        code, out, err = cli(["check", f], capsys)
        assert code == 0, (kind, err)


# -------------------------------------------------------- malformed TOML
MALFORMED = {
    "unclosed-table": "[chip\nrows = 3\n",
    "unclosed-string": '[experiment]\nname = "abc\n',
    "duplicate-key": "[chip]\nrows = 3\nrows = 4\n",
    "duplicate-table": "[chip]\nrows = 3\n[chip]\ncols = 4\n",
    "bare-value": "[chip]\nrows\n",
    "no-value": "[chip]\nrows =\n",
    "garbage-bytes": b"\x00\x01\x02\xff\xfe\x89PNG\r\n\x1a\n",
    "utf16": "[chip]\nrows = 3\n".encode("utf-16"),
    "latin1": "[experiment]\nname = \"caf\xe9\"\n".encode("latin-1"),
    "nul-in-text": "[chip]\nrows = 3\x00\n",
    "section-is-value": "chip = 3\n",
    "array-of-tables": "[[chip]]\nrows = 3\n",
    "nested-table": "[chip.extra]\nrows = 3\n",
    "unknown-section": "[chipp]\nrows = 3\n",
    "instruments-not-table": "instruments = 3\n",
    "huge-integer": "[chip]\nrows = 99999999999999999999999\n",
    "date-value": "[run]\nepochs = 2024-01-01\n",
    "inline-table-value": "[chip]\nrows = {a = 1}\n",
    "only-comment-bad-type": "# nothing\n[chip]\ntype = 7\n",
    "unknown-kind": '[chip]\ntype = "memristor"\n',
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_experiment_file(tmp_path, capsys, name):
    refused_file(MALFORMED[name], tmp_path, capsys, "exp.toml")


def test_experiment_file_is_a_folder(tmp_path, capsys):
    (tmp_path / "dir.toml").mkdir()
    err = refused(["run", tmp_path / "dir.toml", "--out", tmp_path / "runs"], capsys, tmp_path, "dir.toml")
    assert "folder" in err
    refused(["check", tmp_path / "dir.toml"], capsys, tmp_path, "folder")


# ---------------------------------------------------- contradictory settings
R, XY, NR, NL = (BASES[k] for k in ("resistor_network", "xy", "nonreciprocal", "nonlinear_resistor"))
CONTRADICTIONS = {
    "g-min-equals-g-max": (with_keys(R, "chip", g_min_s=1e-3, g_max_s=1e-3), ["g_min_s", "g_max_s"]),
    "g-min-above-g-max-nonlinear": (with_keys(NL, "chip", g_min_s=1e-2, g_max_s=1e-3), ["g_min_s"]),
    "g-min-equals-g-max-nonlinear": (with_keys(NL, "chip", g_min_s=1e-3, g_max_s=1e-3), ["g_min_s"]),
    "targets-equal": (with_keys(R, "task", target_on_v=0.5, target_off_v=0.5), ["target_on_v", "target_off_v"]),
    "targets-equal-nonlinear": (with_keys(NL, "task", target_on_v=0.5, target_off_v=0.5), ["target_on_v"]),
    "targets-equal-dnpu": (DNPU.replace("target_on_v = -0.4", "target_on_v = -1.2"), ["target_on_v"]),
    "state-targets-equal": (with_keys(NR, "task", state_target_on=0.5, state_target_off=0.5),
                            ["state_target_on"]),
    "inputs-equal": (with_keys(R, "task", input_low_v=0.3, input_high_v=0.3), ["input_low_v"]),
    "momentum-1": (with_keys(R, "learning", optimizer="momentum", momentum=1.0), ["momentum"]),
    "momentum-1-adam": (with_keys(R, "learning", optimizer="adam", momentum=1.0), ["momentum"]),
    "xy-coupling-range-empty": (with_keys(XY, "chip", coupling_min_rad_per_s=1.0, coupling_max_rad_per_s=1.0),
                                ["coupling_min_rad_per_s"]),
    "xy-coupling-range-inverted": (with_keys(XY, "chip", coupling_min_rad_per_s=2.0, coupling_max_rad_per_s=1.0),
                                   ["coupling_min_rad_per_s"]),
    "dnpu-electrode-range-empty": (DNPU.replace("electrode_low_v = [-1.2, -1.2, -1.2, -1.2, -1.2, -1.2, -0.35]",
                                                "electrode_low_v = [0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.15]"),
                                   ["electrode"]),
    "dnpu-data-is-control": (DNPU.replace("data_electrodes = [1, 2]", "data_electrodes = [0, 2]"),
                             ["electrode"]),
    "dnpu-electrode-out-of-layout": (DNPU.replace("data_electrodes = [1, 2]", "data_electrodes = [1, 99]"),
                                     ["99"]),
    "pot-steps-1": (with_keys(R, "backend", pot_steps=1), ["pot_steps"]),
    "twin-rate-1e-9": (with_keys(R, "backend", kind="twin", rate_hz=1e-9), ["rate_hz"]),
    "twin-rate-1e-3": (with_keys(R, "backend", kind="twin", rate_hz=1e-3), ["rate_hz"]),
    "dnpu-twin-rate-1e-9": (DNPU.replace('kind = "ideal"', 'kind = "twin"').replace("rate_hz = 10000.0",
                                                                                   "rate_hz = 1e-9"), ["rate_hz"]),
    "twin-pots-miss-conductances": (with_keys(R, "backend", kind="twin", pot_r_end_ohm=1e12), ["pot"]),
    "twin-pot-range-tiny": (with_keys(R, "backend", kind="twin", pot_r_total_ohm=1e-9), ["pot"]),
    "twin-inputs-beyond-max-abs": (with_keys(R, "backend", kind="twin", max_abs_v=0.1), ["max_abs_v"]),
    "twin-bias-beyond-max-abs": (with_keys(with_keys(R, "backend", kind="twin", max_abs_v=1.0), "task",
                                           bias_inputs_v=[1.5]), ["max_abs_v"]),
    "twin-slew-vs-settling": (with_keys(R, "backend", kind="twin", max_slew_v_per_s=1e-9), ["settle_samples"]),
    "nonlinear-twin-slew-vs-settling": (with_keys(NL, "backend", kind="twin", max_slew_v_per_s=1.0),
                                        ["settle_samples"]),
    "twin-target-beyond-max-abs": (with_keys(with_keys(R, "backend", kind="twin"), "task", target_on_v=5.0),
                                   ["max_abs_v"]),
    "nonlinear-twin-target-beyond-max-abs": (with_keys(with_keys(NL, "backend", kind="twin"), "task",
                                                       target_off_v=-10.0), ["max_abs_v"]),
    "nonlinear-twin-error-tone-off-grid": (with_keys(with_keys(NL, "backend", kind="twin"), "learning",
                                                     error_hz=1e7), ["error_hz"]),
    "nonlinear-twin-window-below-a-sample": (with_keys(with_keys(NL, "backend", kind="twin"), "learning",
                                                       window_s=1e-12), ["window_s"]),
    "dnpu-twin-slew-1e-12": (DNPU.replace('kind = "ideal"', 'kind = "twin"').replace(
        "max_slew_v_per_s = 200.0", "max_slew_v_per_s = 1e-12"), ["max_slew_v_per_s"]),
    "nonlinear-twin-window-1000s": (with_keys(with_keys(NL, "backend", kind="twin"), "learning", window_s=1000.0),
                                    ["window_s"]),
    "dnpu-twin-window-1000s": (DNPU.replace('kind = "ideal"', 'kind = "twin"').replace("window_s = 0.05",
                                                                                       "window_s = 1000.0"),
                               ["window_s"]),
    "fp-window-1000s": (with_keys(with_keys(R, "learning", rule="fp", window_s=1000.0), "backend",
                                  rate_hz=1e7), ["window_s"]),
    "fp-window-1000s-nonlinear": (with_keys(with_keys(NL, "learning", window_s=1000.0), "backend", rate_hz=1e7),
                                  ["window_s"]),
    "hge-window-1000s": (DNPU.replace("window_s = 0.05", "window_s = 1000.0").replace("rate_hz = 10000.0",
                                                                                      "rate_hz = 1e7"),
                         ["window_s"]),
    "all-to-all-1e7-nodes": (with_keys(R, "chip", topology="all_to_all", n_nodes=10_000_000), ["memory"]),
    "all-to-all-1e5-nodes-xy": (with_keys(XY, "chip", topology="all_to_all", n_nodes=1_000_000), ["memory"]),
    "layered-far-too-big": (with_keys(R, "chip", topology="layered", hidden_layers=[100000, 100000, 100000]),
                            ["memory"]),
    "nonreciprocal-far-too-big": (with_keys(NR, "chip", hidden_layers=[100000, 100000, 100000]), ["memory"]),
    "nonlinear-far-too-big": (with_keys(NL, "chip", hidden_layers=[100000, 100000, 100000]), ["memory"]),
    "regression-data-far-too-big": (with_keys(R, "task", name="linear_regression", n_samples=10_000_000,
                                              n_features=100_000), ["memory"]),
    "random-more-edges-than-pairs": (with_keys(R, "chip", topology="random", n_nodes=10, n_edges=100),
                                     ["45 edges"]),
    "random-too-few-edges": (with_keys(R, "chip", topology="random", n_nodes=100, n_edges=5), ["edges"]),
    "lattice-1x2-no-room": (with_keys(R, "chip", rows=1, cols=2), ["lattice"]),
    "classes-beyond-task": (with_keys(R, "task", name="iris", classes=[0, 7]), ["class"]),
    "clocked-with-sgd": (with_keys(R, "learning", rule="cl_clocked", optimizer="sgd"), ["optimizer"]),
    "rule-of-other-kind": (with_keys(R, "learning", rule="xy_ep"), ["rule"]),
    "frequency-domain-on-twin": (with_keys(with_keys(R, "learning", rule="fp", fp_mode="frequency_domain"),
                                           "backend", kind="twin"), ["fp_mode"]),
    "test-split-empty": (with_keys(R, "task", name="iris", test_fraction=0.001), ["test_fraction"]),
    "key-of-other-kind": (with_keys(R, "chip", n_starts=3), ["n_starts"]),
    "lattice-inset-too-big": (with_keys(XY, "chip", lattice_inset=100), ["inset"]),
    "terminal-outside-graph": (with_keys(R, "chip", rows=3, cols=3, inputs=[0, 3], outputs=[99], grounds=[7]),
                               ["99"]),
}


@pytest.mark.parametrize("name", list(CONTRADICTIONS))
def test_contradictory_settings(tmp_path, capsys, name):
    text, needles = CONTRADICTIONS[name]
    refused_file(text, tmp_path, capsys, *needles)


# --------------------------------------------------------- edge-list files
EDGE_BASE = with_keys(R, "chip", topology="edge_list", edge_list="edges.txt", inputs=[0, 1], outputs=[2],
                      grounds=[3])
EDGE_FILES = {
    "binary": b"\x7fELF\x02\x01\x01\x00\x00\x00\xff\xfe\x00\x00" * 20,
    "png-header": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
    "utf16": "0 1\n1 2\n2 3\n".encode("utf-16"),
    "nul-bytes": b"0 1\n\x00\x00\x00\n2 3\n",
    "negative-index": b"0 1\n1 -2\n2 3\n",
    "float-index": b"0 1\n1 2.5\n2 3\n",
    "huge-index": b"0 1\n1 2\n2 3\n3 100000000000\n",
    "self-loop": b"0 1\n1 1\n1 2\n2 3\n",
    "one-column": b"0\n1\n2\n",
    "only-comments": b"# nothing\n# here\n",
    "empty": b"",
    "disconnected": b"0 1\n2 3\n",
    "words": b"a b\nc d\n",
    "terminal-missing": b"0 1\n1 2\n",
}


@pytest.mark.parametrize("name", list(EDGE_FILES))
def test_bad_edge_list(tmp_path, capsys, name):
    refused_file(EDGE_BASE, tmp_path, capsys, "edge", setup=lambda tmp: (tmp / "edges.txt").write_bytes(
        EDGE_FILES[name]))


def test_edge_list_is_a_folder(tmp_path, capsys):
    refused_file(EDGE_BASE, tmp_path, capsys, "edges.txt", setup=lambda tmp: (tmp / "edges.txt").mkdir())


# ------------------------------------------------------------- MNIST files
def _idx(path: Path, array: np.ndarray, code: int = 0x08) -> None:
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    path.write_bytes(header + array.astype(">u1").tobytes())


def _mnist(labels=None, images=None, label_bytes=None):
    def setup(tmp: Path) -> None:
        d = tmp / "mnist"
        d.mkdir()
        n = 20
        _idx(d / "t10k-images-idx3-ubyte", np.zeros((n, 28, 28)) if images is None else images)
        if label_bytes is not None:
            (d / "t10k-labels-idx1-ubyte").write_bytes(label_bytes)
        else:
            _idx(d / "t10k-labels-idx1-ubyte", np.arange(n) % 10 if labels is None else labels)
    return setup


MNIST_BASE = with_keys(with_keys(R, "task", name="mnist", mnist_path="mnist", downsample=7),
                       "chip", topology="layered")
MNIST_CASES = {
    "labels-200": _mnist(labels=np.full(20, 200)),
    "images-wrong-size": _mnist(images=np.zeros((20, 5, 5))),
    "labels-truncated": _mnist(label_bytes=bytes([0, 0, 8, 1, 0, 0, 0, 20, 1, 2])),
    "labels-not-idx": _mnist(label_bytes=b"hello world, not IDX at all"),
    "count-mismatch": _mnist(labels=np.arange(7) % 10),
}


@pytest.mark.parametrize("name", list(MNIST_CASES))
def test_bad_mnist_files(tmp_path, capsys, name):
    refused_file(MNIST_BASE, tmp_path, capsys, "mnist", setup=MNIST_CASES[name])


# --------------------------------------------------------------- run files
@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    """A completed 6-step run of the resistor base (3 epochs of 2 steps), checkpointed every step."""
    folder = tmp_path_factory.mktemp("good_run")
    f = folder / "exp.toml"
    f.write_text(with_keys(with_keys(R, "run", epochs=3, batch_size=2), "task", test_fraction=0.5))
    from labtrain.cli import main

    assert main(["run", str(f), "--out", str(folder / "runs"), "-q"]) == 0
    (path,) = (folder / "runs").glob("*.h5")
    return path


def _copy(good: Path, tmp: Path) -> Path:
    p = tmp / "run.h5"
    shutil.copyfile(good, p)
    return p


def _truncate(frac: float):
    def make(good, tmp):
        p = _copy(good, tmp)
        data = p.read_bytes()
        p.write_bytes(data[:int(len(data) * frac)])
        return p
    return make


def _zero(start: float, stop: float):
    def make(good, tmp):
        p = _copy(good, tmp)
        data = bytearray(p.read_bytes())
        a, b = int(len(data) * start), int(len(data) * stop)
        data[a:b] = bytes(b - a)
        p.write_bytes(bytes(data))
        return p
    return make


def _garbage(good, tmp):
    p = tmp / "run.h5"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    return p


def _hdf5_signature_then_garbage(good, tmp):
    p = tmp / "run.h5"
    p.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(2000))
    return p


def _foreign(good, tmp):
    p = tmp / "run.h5"
    with h5py.File(p, "w") as f:
        f["data"] = np.arange(10)
    return p


def _folder(good, tmp):
    p = tmp / "run.h5"
    p.mkdir()
    return p


def _edit(fn):
    """A copy of the good run with its HDF5 contents edited by ``fn(h5file)``."""
    def make(good, tmp):
        p = _copy(good, tmp)
        with h5py.File(p, "r+") as f:
            fn(f)
        return p
    return make


def _set_text(name: str, text: str):
    def fn(f):
        attrs = dict(f[name].attrs)
        del f[name]
        f[name] = text
        f[name].attrs.update(attrs)
    return fn


def _set_attr(name: str, key: str, value):
    def fn(f):
        (f[name] if name else f).attrs[key] = value
    return fn


def _delete(name: str):
    def fn(f):
        del f[name]
    return fn


RUN_FILES = {
    "truncated-half": _truncate(0.5),
    "truncated-tenth": _truncate(0.1),
    "truncated-header": _truncate(0.001),
    "zeroed-head": _zero(0.0, 0.05),
    "zeroed-first-half": _zero(0.0, 0.5),
    "random-bytes": _garbage,
    "hdf5-signature-only": _hdf5_signature_then_garbage,
    "foreign-hdf5": _foreign,
    "a-folder": _folder,
    "experiment-not-toml": _edit(_set_text("experiment", "[chip\nthis is not toml")),
    "experiment-bad-value": _edit(_set_text("experiment", '[chip]\ntype = "resistor_network"\nrows = -4\n')),
    "experiment-unknown-kind": _edit(_set_text("experiment", '[chip]\ntype = "memristor"\n')),
    "overrides-not-json": _edit(_set_attr("experiment", "overrides", "{not json")),
    "overrides-bad-value": _edit(_set_attr("experiment", "overrides", '{"chip": {"rows": "many"}}')),
    "overrides-not-a-table": _edit(_set_attr("experiment", "overrides", "[1, 2, 3]")),
    "snapshot-not-json": _edit(_set_text("snapshot", "{not json")),
    "experiment-missing": _edit(_delete("experiment")),
    "state-missing": _edit(_delete("state")),
    "format-foreign": _edit(_set_attr("", "format", "something-else")),
    "format-future": _edit(_set_attr("", "format", "labtrain-run/99")),
}
RUN_COMMANDS = {
    "show": ["show", "{run}"],
    "resume": ["resume", "{run}", "--epochs", "50", "-q"],
    "export": ["export", "{run}", "-o", "{tmp}/out.nc"],
    "export-csv": ["export", "{run}", "--format", "csv", "-o", "{tmp}/out"],
    "gradcheck": ["gradcheck", "{run}", "--batch", "2"],
}
SNAPSHOT_ONLY = {"snapshot-not-json"}  # only show reads the snapshot (resume, export, gradcheck do not need it)


def _run_cases():
    for name in RUN_FILES:
        for command in RUN_COMMANDS:
            if name in SNAPSHOT_ONLY and command not in ("show", "export"):
                continue
            if name.startswith(("experiment-", "overrides-")) and command in ("show", "export", "export-csv"):
                continue  # show/export print what is stored; it is the experiment that no longer builds
            yield pytest.param(name, command, id=f"{name}-{command}")


@pytest.mark.parametrize("name, command", list(_run_cases()))
def test_bad_run_file(tmp_path, capsys, good_run, name, command):
    path = RUN_FILES[name](good_run, tmp_path)
    argv = [a.format(run=path, tmp=tmp_path) for a in RUN_COMMANDS[command]]
    refused(argv, capsys, tmp_path, "run.h5")


@pytest.mark.parametrize("name", ["truncated-half", "random-bytes", "foreign-hdf5", "a-folder", "state-missing"])
def test_repair_refuses_what_it_cannot_repair(tmp_path, capsys, good_run, name):
    path = RUN_FILES[name](good_run, tmp_path)
    refused(["repair", path], capsys, tmp_path, "run.h5")


def test_runs_lists_a_damaged_file_as_unreadable(tmp_path, capsys, good_run):
    _truncate(0.5)(good_run, tmp_path)
    code, out, err = cli(["runs", tmp_path], capsys)
    assert code == 0 and "unreadable" in out + err and "Traceback" not in err


# ------------------------------------------------------- resume / export
def test_resume_epochs_below_steps_done(tmp_path, capsys, good_run):
    p = _copy(good_run, tmp_path)
    refused(["resume", p, "--epochs", "1", "-q"], capsys, tmp_path, "--epochs", "6")


def test_resume_epochs_equal_to_done(tmp_path, capsys, good_run):
    p = _copy(good_run, tmp_path)
    refused(["resume", p, "--epochs", "3", "-q"], capsys, tmp_path, "--epochs")


def test_resume_completed_without_epochs(tmp_path, capsys, good_run):
    p = _copy(good_run, tmp_path)
    refused(["resume", p, "-q"], capsys, tmp_path, "completed")


def test_resume_epochs_huge(tmp_path, capsys, good_run):
    p = _copy(good_run, tmp_path)
    refused(["resume", p, "--epochs", "100000000", "-q"], capsys, tmp_path, "epochs")


@pytest.mark.parametrize("command", ["show", "resume", "export", "gradcheck", "repair"])
def test_run_file_missing(tmp_path, capsys, command):
    refused([command, tmp_path / "nowhere.h5"], capsys, tmp_path, "nowhere.h5", "not found")


@pytest.mark.parametrize("command", ["show", "resume", "export", "gradcheck", "repair"])
def test_run_file_is_a_folder(tmp_path, capsys, command):
    (tmp_path / "runs.h5").mkdir()
    refused([command, tmp_path / "runs.h5"], capsys, tmp_path, "runs.h5", "is a folder")


@pytest.mark.parametrize("command", ["show", "resume", "export", "gradcheck", "repair", "check", "run"])
def test_device_file_given(tmp_path, capsys, command):
    refused([command, "/dev/null"], capsys, tmp_path, "/dev/null", "not a regular file")


@pytest.mark.parametrize("command", ["show", "resume", "export", "repair"])
def test_run_file_is_an_experiment_file(tmp_path, capsys, command):
    f = tmp_path / "exp.toml"
    f.write_text(R)
    refused([command, f], capsys, tmp_path, "exp.toml")


EXPORT_TARGETS = {
    "into-missing-folder": (["-o", "{tmp}/missing/out.nc"], "missing"),
    "csv-into-missing-folder": (["--format", "csv", "-o", "{tmp}/missing/out"], "missing"),
    "onto-a-folder": (["-o", "{tmp}/afolder"], "afolder"),
    "onto-existing-file": (["-o", "{tmp}/notes.txt"], "--force"),
    "onto-the-run-file": (["-o", "{run}"], "run.h5"),
    "csv-onto-existing": (["--format", "csv", "-o", "{tmp}/old"], "--force"),
    "under-a-file": (["-o", "{tmp}/notes.txt/out.nc"], "notes.txt"),
    "into-proc": (["-o", "/proc/labtrain-hostile/out.nc"], "/proc"),
}


@pytest.mark.parametrize("name", list(EXPORT_TARGETS))
def test_export_target_refused(tmp_path, capsys, good_run, name):
    p = _copy(good_run, tmp_path)
    (tmp_path / "afolder").mkdir()
    (tmp_path / "notes.txt").write_text("an unrelated file\n")
    (tmp_path / "old-steps.csv").write_text("step\n")
    args, needle = EXPORT_TARGETS[name]
    if needle == "/proc" and not Path("/proc/self").exists():
        pytest.skip("no /proc here")
    refused(["export", p, *[a.format(tmp=tmp_path, run=p) for a in args]], capsys, tmp_path, needle)


def test_export_default_target_exists(tmp_path, capsys, good_run):
    p = _copy(good_run, tmp_path)
    p.with_suffix(".nc").write_text("an older export\n")
    refused(["export", p], capsys, tmp_path, "--force")


# -------------------------------------------------------------- --out
OUT_TARGETS = {
    "a-file": ("{tmp}/afile", "afile"),
    "under-a-file": ("{tmp}/afile/runs", "afile"),
    "in-proc": ("/proc/labtrain-hostile-runs", "/proc"),
    "empty": ("", "out_dir"),
}


@pytest.mark.parametrize("name", list(OUT_TARGETS))
def test_unwritable_out(tmp_path, capsys, name):
    f = tmp_path / "exp.toml"
    f.write_text(R)
    (tmp_path / "afile").write_text("not a folder\n")
    out, needle = OUT_TARGETS[name]
    if needle == "/proc" and not Path("/proc/self").exists():
        pytest.skip("no /proc here")
    refused(["run", f, "--out", out.format(tmp=tmp_path), "-q"], capsys, tmp_path, needle)


def test_out_dir_in_file_is_a_file(tmp_path, capsys):
    (tmp_path / "afile").write_text("not a folder\n")
    refused_file(with_keys(R, "run", out_dir=str(tmp_path / "afile")), tmp_path, capsys, "out_dir", out=False)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_read_only_folder(tmp_path, capsys):
    f = tmp_path / "exp.toml"
    f.write_text(R)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        refused(["run", f, "--out", ro / "runs", "-q"], capsys, tmp_path, "ro")
    finally:
        ro.chmod(0o700)


# ------------------------------------------------------- command-line flags
FLAG_CASES = {
    "gradcheck-eta-2": (["gradcheck", "{f}", "--eta", "2"], "eta"),
    "gradcheck-eta-nan": (["gradcheck", "{f}", "--eta", "nan"], "eta"),
    "gradcheck-beta-s-huge": (["gradcheck", "{f}", "--beta-s", "1e9"], "beta"),
    "gradcheck-beta-not-for-kind": (["gradcheck", "{f}", "--beta", "0.1"], "--beta"),
    "gradcheck-batch-negative": (["gradcheck", "{f}", "--batch", "-3"], "--batch"),
    "run-epochs-0": (["run", "{f}", "--epochs", "0"], "--epochs"),
    "run-epochs-huge": (["run", "{f}", "--epochs", "100000000"], "epochs"),
    "run-epochs-float": (["run", "{f}", "--epochs", "2.5"], "--epochs"),
    "run-seed-negative": (["run", "{f}", "--seed", "-1"], "--seed"),
    "run-seed-huge": (["run", "{f}", "--seed", "99999999999"], "seed"),
    "run-backend-bad": (["run", "{f}", "--backend", "simulator"], "--backend"),
    "check-backend-bad": (["check", "{f}", "--backend", "hw"], "--backend"),
    "unknown-command": (["frobnicate", "{f}"], "frobnicate"),
    "unknown-option": (["run", "{f}", "--fast"], "--fast"),
    "set-unknown-key": (["run", "{f}", "--set", "chip.bogus=1"], "bogus"),
    "set-unknown-section": (["run", "{f}", "--set", "chipz.rows=3"], "chipz"),
    "set-no-section": (["run", "{f}", "--set", "rows=3"], "rows"),
    "set-no-value": (["run", "{f}", "--set", "chip.rows"], "chip.rows"),
    "set-empty": (["run", "{f}", "--set", ""], "--set"),
    "set-bad-toml": (["run", "{f}", "--set", "chip.rows=[1"], "rows"),
    "set-out-of-range": (["run", "{f}", "--set", "chip.rows=0"], "rows"),
    "set-nan": (["check", "{f}", "--set", "run.epochs=nan"], "epochs"),
    "set-inf": (["check", "{f}", "--set", "learning.learning_rate=inf"], "learning_rate"),
    "set-wrong-type": (["check", "{f}", "--set", "learning.rule=3"], "rule"),
    "set-twice": (["check", "{f}", "--set", "chip.rows=3", "--set", "chip.rows=4"], "twice"),
    "set-and-option": (["run", "{f}", "--set", "run.epochs=3", "--epochs", "4"], "epochs"),
    "set-other-kinds-key": (["check", "{f}", "--set", "chip.n_starts=3"], "n_starts"),
    "set-unknown-type": (["check", "{f}", "--set", "chip.type=memristor"], "memristor"),
    "set-sweep-list": (["run", "{f}", "--set", "learning.learning_rate=0.1,0.2"], "learning_rate"),
    "set-contradiction": (["run", "{f}", "--set", "chip.g_min_s=1e-3", "--set", "chip.g_max_s=1e-3"], "g_min_s"),
    "set-out-dir-file": (["run", "{f}", "--set", "run.out_dir={tmp}/exp.toml"], "out_dir"),
    "runs-on-a-file": (["runs", "{f}"], "exp.toml"),
    "selftest-on-ideal": (["selftest", "{f}"], "selftest"),
    "selftest-bad-limit": (["selftest", "{f}", "--backend", "twin", "--limit", "noise_max_v=-1"], "noise"),
    "selftest-bad-fault": (["selftest", "{f}", "--backend", "twin", "--twin-fault", "explode"], "explode"),
    "sweep-nothing": (["sweep"], "sweep"),
    "sweep-out-is-a-file": (["sweep", "{f}", "--set", "learning.learning_rate=0.1,0.2", "--out", "{f}"],
                            "exp.toml"),
    "selftest-report-onto-a-folder": (["selftest", "{f}", "--backend", "twin", "--report", "{tmp}"], "--report"),
    "selftest-report-under-a-file": (["selftest", "{f}", "--backend", "twin", "--report", "{f}/r.h5"],
                                     "--report"),
    "sweep-summary-missing": (["sweep", "--summary", "{tmp}/nosweep"], "nosweep"),
}


@pytest.mark.parametrize("name", list(FLAG_CASES))
def test_bad_flags(tmp_path, capsys, name):
    f = tmp_path / "exp.toml"
    f.write_text(R)
    argv, needle = FLAG_CASES[name]
    argv = [a.format(f=f, tmp=tmp_path) for a in argv]
    if argv[0] == "run":
        argv += ["--out", str(tmp_path / "runs"), "-q"]
    refused(argv, capsys, tmp_path, needle)


def test_gradcheck_run_file_set_changes_the_chip(tmp_path, capsys, good_run):
    """--set that changes the network of a run file's checkpoint: refused, not a traceback."""
    p = _copy(good_run, tmp_path)
    refused(["gradcheck", p, "--set", "chip.rows=5"], capsys, tmp_path, "run.h5")


def test_gradcheck_eta_through_schema_on_run_file(tmp_path, capsys, good_run):
    p = _copy(good_run, tmp_path)
    refused(["gradcheck", p, "--eta", "1.5"], capsys, tmp_path, "eta")


# ------------------------------------------------------------ bug reports
def test_unexpected_exception_mid_run_is_one_bug_line(tmp_path, capsys, monkeypatch):
    """Not bad input but a bug: exit 1, one line naming the exception, where it was raised and the run file
    (status failed), no traceback."""
    from labtrain.protocols.gep import CoupledLearning
    from labtrain.training.store import read_summary

    def boom(self, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(CoupledLearning, "estimate", boom)
    f = tmp_path / "exp.toml"
    f.write_text(R)
    code, out, err = cli(["run", f, "--out", tmp_path / "runs", "-q"], capsys)
    assert code == 1 and "Traceback" not in err
    (line,) = err.strip().splitlines()
    (path,) = (tmp_path / "runs").glob("*.h5")
    assert "internal error: RuntimeError: boom (at labtrain/" in line and str(path) in line
    assert read_summary(path)["status"] == "failed"


def test_unexpected_exception_before_run_is_one_bug_line(tmp_path, capsys, monkeypatch):
    import labtrain.training.launch as launch

    def boom(exp):
        raise KeyError("no such thing")

    monkeypatch.setattr(launch, "build_setup", boom)
    f = tmp_path / "exp.toml"
    f.write_text(R)
    code, out, err = cli(["run", f, "--out", tmp_path / "runs", "-q"], capsys)
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "internal error: KeyError" in err and not (tmp_path / "runs").exists()


# ------------------------------------------------------------- subprocess
def test_console_script_hostile_file(tmp_path):
    """The real entry point: exit status 2, one line, no run folder, for a binary edge-list file."""
    f = tmp_path / "exp.toml"
    f.write_text(EDGE_BASE)
    (tmp_path / "edges.txt").write_bytes(EDGE_FILES["binary"])
    p = subprocess.run([sys.executable, "-m", "labtrain", "run", str(f), "--out", str(tmp_path / "runs")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
    assert not (tmp_path / "runs").exists()


def test_corpus_size():
    """Issue 12 asks for at least 150 hostile cases."""
    n = (len(KEY_CASES) + len(MALFORMED) + len(CONTRADICTIONS) + len(EDGE_FILES) + len(MNIST_CASES)
         + len(list(_run_cases())) + len(EXPORT_TARGETS) + len(OUT_TARGETS) + len(FLAG_CASES))
    assert n >= 150
