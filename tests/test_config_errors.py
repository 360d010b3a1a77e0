"""Bad input -- experiment files, run files, arguments -- gives exit 2 and one line on stderr.

Every case writes a bad file to ``tmp_path``, runs the CLI on it and checks:
exit code 2, exactly one line on stderr naming the file, the section/key and
the bad value, nothing on stdout, and no run file written.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from cli_helpers import cli

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))

# A small experiment that builds and runs: AND gate (2 inputs + 1 V bias) on a 3x3 lattice.
GOOD = """\
[experiment]
name = "and_gate"
[chip]
topology = "lattice"
rows = 3
cols = 3
[task]
name = "and"
bias_inputs_v = [1.0]
[learning]
rule = "cl"
learning_rate = 0.05
[run]
epochs = 3
"""


def assert_one_line_error(code: int, out: str, err: str, *needles: str) -> None:
    assert code == 2, (code, out, err)
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert err.endswith("\n")
    assert "error:" in lines[0]
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in: {lines[0]}"


def _write_edges(tmp: Path, text: str) -> None:
    (tmp / "edges.txt").write_text(text)


def _mnist_folder_without_idx(tmp: Path) -> None:
    d = tmp / "mnist"
    d.mkdir()
    (d / "README.txt").write_text("the IDX files are elsewhere\n")


# (id, experiment text, extra setup, substrings the error line must contain)
# "{file}" in a needle is replaced by the experiment file's path.
CASES = [
    ("unknown-section", "[chips]\nrows = 3\n", None,
     ["{file}", "[chips]", "did you mean 'chip'"]),
    ("section-not-a-table", "chip = 3\n", None,
     ["{file}", "[chip]", "table"]),
    ("unknown-key", "[chip]\nrwos = 3\n", None,
     ["{file}", "[chip]", "'rwos'", "did you mean 'rows'"]),
    ("unknown-key-run", "[run]\nepoch = 3\n", None,
     ["{file}", "[run]", "'epoch'", "did you mean 'epochs'"]),
    ("string-for-int", '[chip]\nrows = "3"\n', None,
     ["{file}", "[chip]", "rows = '3'", "integer"]),
    ("float-for-int", "[run]\nepochs = 2.5\n", None,
     ["{file}", "[run]", "epochs = 2.5", "integer"]),
    ("bool-for-number", "[learning]\neta = true\n", None,
     ["{file}", "[learning]", "eta = true", "number"]),
    ("list-for-scalar", "[learning]\nlearning_rate = [0.1]\n", None,
     ["{file}", "[learning]", "learning_rate = [0.1]", "number"]),
    ("scalar-for-list", "[task]\nbias_inputs_v = 1.0\n", None,
     ["{file}", "[task]", "bias_inputs_v = 1.0", "list"]),
    ("bad-list-entry", '[chip]\ninputs = [0, "three"]\n', None,
     ["{file}", "[chip]", "inputs", "'three'"]),
    ("number-for-string", "[learning]\nrule = 3\n", None,
     ["{file}", "[learning]", "rule = 3", "string"]),
    ("out-of-range-high", "[learning]\neta = 1.5\n", None,
     ["{file}", "[learning]", "eta = 1.5", "(0, 1]"]),
    ("out-of-range-low", "[chip]\nrows = 0\n", None,
     ["{file}", "[chip]", "rows = 0", "[1, 2000]"]),
    ("open-bound-zero", "[learning]\nlearning_rate = 0.0\n", None,
     ["{file}", "[learning]", "learning_rate = 0.0", "out of range"]),
    ("negative-seed", "[run]\nseed = -1\n", None,
     ["{file}", "[run]", "seed = -1", "out of range", "[0, 4294967295]"]),
    ("not-finite", "[backend]\nread_noise_v = nan\n", None,
     ["{file}", "[backend]", "read_noise_v = nan", "finite"]),
    ("list-entry-out-of-range", "[task]\nbias_inputs_v = [1.0, 50.0]\n", None,
     ["{file}", "[task]", "bias_inputs_v", "50.0"]),
    ("bad-rule", '[learning]\nrule = "epp"\n', None,
     ["{file}", "[learning]", "rule = 'epp'", "did you mean 'ep'"]),
    ("bad-topology", '[chip]\ntopology = "latice"\n', None,
     ["{file}", "[chip]", "topology = 'latice'", "did you mean 'lattice'"]),
    ("bad-task", '[task]\nname = "xorr"\n', None,
     ["{file}", "[task]", "name = 'xorr'", "did you mean 'xor'"]),
    ("bad-optimizer", '[learning]\noptimizer = "adamw"\n', None,
     ["{file}", "[learning]", "optimizer = 'adamw'"]),
    ("g-min-above-g-max", "[chip]\ng_min_s = 1e-2\ng_max_s = 1e-3\n", None,
     ["{file}", "[chip]", "g_min_s = 0.01", "g_max_s = 0.001"]),
    ("inputs-carry-nothing", "[task]\ninput_low_v = 0.5\ninput_high_v = 0.5\n", None,
     ["{file}", "[task]", "input_low_v", "input_high_v"]),
    ("pot-steps-1", "[backend]\npot_steps = 1\n", None,
     ["{file}", "[backend]", "pot_steps = 1"]),
    ("clocked-with-sgd", '[learning]\nrule = "cl_clocked"\noptimizer = "sgd"\n', None,
     ["{file}", "[learning]", "optimizer = 'sgd'", "cl_clocked"]),
    ("halflife-on-clocked", '[learning]\nrule = "cl_clocked"\nlr_halflife_steps = 100\n', None,
     ["{file}", "[learning]", "lr_halflife_steps = 100", "tap_step"]),
    ("halflife-negative", "[learning]\nlr_halflife_steps = -5\n", None,
     ["{file}", "[learning]", "lr_halflife_steps", "[0, 1e+09]"]),
    ("not-toml", "[chip\nrows = 3\n", None,
     ["{file}", "not valid TOML", "line 1"]),
    ("terminal-out-of-range", "[chip]\nrows = 3\ncols = 3\ninputs = [0, 3, 99]\n", None,
     ["{file}", "[chip]", "inputs", "99", "0..8"]),
    ("overlapping-terminals", "[chip]\nrows = 3\ncols = 3\ninputs = [0, 3, 5]\noutputs = [5]\ngrounds = [7]\n",
     None, ["{file}", "[chip]", "node 5", "inputs", "outputs"]),
    ("ground-is-output", "[chip]\nrows = 3\ncols = 3\ninputs = [0, 3, 6]\noutputs = [5]\ngrounds = [5]\n",
     None, ["{file}", "[chip]", "node 5", "outputs", "grounds"]),
    ("terminal-listed-twice", "[chip]\nrows = 3\ncols = 3\ninputs = [0, 0, 6]\n", None,
     ["{file}", "[chip]", "inputs", "twice"]),
    ("wrong-number-of-inputs", "[chip]\nrows = 3\ncols = 3\ninputs = [0, 6]\n", None,
     ["{file}", "[chip]", "inputs = [0, 6]", "3 input"]),
    ("edge-list-key-missing", '[chip]\ntopology = "edge_list"\ninputs = [0, 1, 2]\noutputs = [3]\ngrounds = [4]\n',
     None, ["{file}", "[chip]", "edge_list"]),
    ("edge-list-file-missing",
     '[chip]\ntopology = "edge_list"\nedge_list = "nope.txt"\ninputs = [0, 1, 2]\noutputs = [3]\ngrounds = [4]\n',
     None, ["{file}", "[chip]", "edge_list = 'nope.txt'", "not found"]),
    ("edge-list-malformed",
     '[chip]\ntopology = "edge_list"\nedge_list = "edges.txt"\ninputs = [0, 1, 2]\noutputs = [3]\ngrounds = [4]\n',
     lambda tmp: _write_edges(tmp, "0 1\n1 x\n2 3\n"), ["{file}", "[chip]", "edges.txt:2", "'1 x'"]),
    ("edge-list-empty",
     '[chip]\ntopology = "edge_list"\nedge_list = "edges.txt"\ninputs = [0, 1, 2]\noutputs = [3]\ngrounds = [4]\n',
     lambda tmp: _write_edges(tmp, "# no edges here\n\n"), ["{file}", "[chip]", "edges.txt", "no edges"]),
    ("edge-list-terminal-outside",
     '[chip]\ntopology = "edge_list"\nedge_list = "edges.txt"\ninputs = [0, 1, 2]\noutputs = [3]\ngrounds = [9]\n',
     lambda tmp: _write_edges(tmp, "0 1\n1 2\n2 3\n3 4\n4 0\n"), ["{file}", "[chip]", "grounds", "9"]),
    ("layered-with-terminals", '[chip]\ntopology = "layered"\ninputs = [0, 1, 2]\n', None,
     ["{file}", "[chip]", "layered"]),
    ("class-does-not-exist", '[task]\nname = "iris"\nclasses = [0, 5]\n', None,
     ["{file}", "[task]", "class 5"]),
    ("test-split-empty", '[task]\nname = "iris"\ntest_fraction = 0.001\n', None,
     ["{file}", "[task]", "empty", "150 / 0", "test_fraction = 0.001"]),
    ("train-split-empty", '[task]\nname = "linear_regression"\nn_samples = 4\ntest_fraction = 1.0\n', None,
     ["{file}", "[task]", "empty", "0 / 4", "test_fraction = 1.0"]),
    ("mnist-without-path", '[task]\nname = "mnist"\n', None,
     ["{file}", "[task]", "mnist_path"]),
    ("mnist-folder-missing", '[task]\nname = "mnist"\nmnist_path = "no_such_folder"\n', None,
     ["{file}", "[task]", "no_such_folder", "does not exist"]),
    ("mnist-folder-without-idx", '[task]\nname = "mnist"\nmnist_path = "mnist"\n', _mnist_folder_without_idx,
     ["{file}", "[task]", "train-images-idx3-ubyte", "mnist"]),
    ("regression-with-argmax", '[task]\nname = "linear_regression"\ndecoder = "argmax"\n', None,
     ["{file}", "[task]", "argmax"]),
    ("twin-wiring-too-few-inputs", '[backend]\nkind = "twin"\n[wiring]\ninput_ao = ["Dev1/ao0"]\n', None,
     ["{file}", "[wiring]", "input_ao lists 1 channels"]),
    ("twin-wiring-bad-read-node", '[backend]\nkind = "twin"\n[wiring]\nread = "outputs"\n'
     'node_ai = ["Dev1/ai0"]\nread_nodes = [40]\n', None, ["{file}", "[wiring]", "40"]),
    ("twin-ep-without-node-readout", '[backend]\nkind = "twin"\n[wiring]\nread = "outputs"\n'
     '[learning]\nrule = "ep"\n', None, ["{file}", "[learning]", "edge_drops"]),
    ("backend-hardware-without-drivers", '[backend]\nkind = "hardware"\n', None,
     ["{file}", "[backend]", "kind = 'hardware'", "pip install -e '.[hardware]'"]),
]


def _merge(text: str) -> str:
    """The good experiment with ``text``'s sections replacing/extending its own."""
    import tomllib

    try:
        bad = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return text  # not TOML: use as is
    good = tomllib.loads(GOOD)
    for section, values in bad.items():
        if isinstance(values, dict) and isinstance(good.get(section), dict):
            good[section].update(values)
        else:
            good[section] = values
    return _dump(good)


def _dump(data: dict) -> str:
    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v + '"'
        if isinstance(v, float) and v != v:
            return "nan"
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return repr(v)

    lines = []
    for section, values in data.items():
        if not isinstance(values, dict):
            lines.insert(0, f"{section} = {val(values)}")
            continue
        lines.append(f"[{section}]")
        lines += [f"{k} = {val(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def test_good_experiment_is_good(tmp_path, capsys):
    """The base of every bad case runs (so each case fails for its own reason only)."""
    f = tmp_path / "good.toml"
    f.write_text(_merge(""))
    code, out, err = cli(["check", f], capsys)
    assert code == 0, err
    assert "OK" in out


@pytest.mark.parametrize("case_id, text, setup, needles", CASES, ids=[c[0] for c in CASES])
def test_bad_experiment_file(tmp_path, capsys, case_id, text, setup, needles):
    f = tmp_path / "bad.toml"
    f.write_text(_merge(text))
    if setup is not None:
        setup(tmp_path)
    out_dir = tmp_path / "out"
    code, out, err = cli(["run", f, "--out", out_dir, "-q"], capsys)
    assert_one_line_error(code, out, err, "labtrain run: error:", *[n.format(file=f) for n in needles])
    assert not out_dir.exists() or not any(out_dir.iterdir()), "a run file was written for bad input"
    # check gives the same message
    code2, out2, err2 = cli(["check", f], capsys)
    assert_one_line_error(code2, out2, err2, "labtrain check: error:")
    assert err2.split("error:", 1)[1] == err.split("error:", 1)[1]


def test_missing_experiment_file(tmp_path, capsys):
    f = tmp_path / "nowhere.toml"
    code, out, err = cli(["run", f, "--out", tmp_path / "out"], capsys)
    assert_one_line_error(code, out, err, str(f), "not found")
    assert not (tmp_path / "out").exists()


def test_experiment_file_is_a_folder(tmp_path, capsys):
    code, out, err = cli(["check", tmp_path], capsys)
    assert_one_line_error(code, out, err, str(tmp_path), "folder")


def test_experiment_file_not_text(tmp_path, capsys):
    f = tmp_path / "binary.toml"
    f.write_bytes(b"\xff\xfe\x00\x81garbage")
    code, out, err = cli(["check", f], capsys)
    assert_one_line_error(code, out, err, str(f))


@pytest.mark.parametrize("argv, needles", [
    (["run", "{file}", "--epochs", "0"], ["--epochs", "'0'", ">= 1"]),
    (["run", "{file}", "--epochs", "two"], ["--epochs", "'two'"]),
    (["run", "{file}", "--seed", "-1"], ["--seed", "'-1'"]),
    (["run", "{file}", "--backend", "simulator"], ["--backend", "'simulator'"]),
    (["resume", "{file}", "--epochs", "0"], ["--epochs", "'0'"]),
    (["gradcheck", "{file}", "--beta-s", "-0.5"], ["--beta-s", "'-0.5'"]),
    (["run"], ["file"]),
    (["frobnicate"], ["'frobnicate'"]),
], ids=["epochs-0", "epochs-word", "seed-negative", "backend-choice", "resume-epochs-0", "beta-negative",
        "no-file", "no-command"])
def test_bad_arguments(tmp_path, capsys, argv, needles):
    f = tmp_path / "good.toml"
    f.write_text(GOOD)
    out_dir = tmp_path / "out"
    code, out, err = cli([a.format(file=f) for a in argv] + (["--out", out_dir] if argv[0] == "run" and
                                                               len(argv) > 1 else []), capsys)
    assert_one_line_error(code, out, err, *needles)
    assert not out_dir.exists()


def test_backend_override_on_cli(tmp_path, capsys):
    """--backend hardware on a machine without nidaqmx: one line naming the file and the missing driver."""
    # nidaqmx is deliberately not in the test extra
    try:
        import nidaqmx  # noqa: F401
        pytest.skip("nidaqmx is installed here")
    except ImportError:
        pass
    f = tmp_path / "good.toml"
    f.write_text(GOOD)
    code, out, err = cli(["run", f, "--backend", "hardware", "--out", tmp_path / "out"], capsys)
    assert_one_line_error(code, out, err, str(f), "[backend]", "'hardware'", "pip install -e '.[hardware]'")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------- run files
def _bad_run_file(tmp: Path, kind: str) -> Path:
    if kind == "missing":
        return tmp / "missing.h5"
    if kind == "not-hdf5":
        p = tmp / "notes.h5"
        p.write_text("this is not an HDF5 file\n")
        return p
    if kind == "foreign-hdf5":
        p = tmp / "foreign.h5"
        with h5py.File(p, "w") as f:
            f["data"] = [1, 2, 3]
            f.attrs["format"] = "something-else"
        return p
    if kind == "empty-file":
        p = tmp / "empty.h5"
        p.write_bytes(b"")
        return p
    raise AssertionError(kind)


RUN_FILE_KINDS = {"missing": "not found", "not-hdf5": "HDF5", "foreign-hdf5": "not a labtrain run",
                  "empty-file": "HDF5"}


@pytest.mark.parametrize("kind", list(RUN_FILE_KINDS))
@pytest.mark.parametrize("command", [["resume"], ["show"], ["export", "--format", "csv"],
                                     ["export", "--format", "netcdf"], ["gradcheck"]],
                         ids=["resume", "show", "export-csv", "export-netcdf", "gradcheck"])
def test_bad_run_file(tmp_path, capsys, command, kind):
    path = _bad_run_file(tmp_path, kind)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = cli([command[0], path, *command[1:]], capsys)
    assert_one_line_error(code, out, err, f"labtrain {command[0]}: error:", str(path), RUN_FILE_KINDS[kind])
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "nothing may be written for a bad run file"


def test_resume_completed_run(tmp_path, capsys):
    f = tmp_path / "good.toml"
    f.write_text(GOOD)
    code, out, err = cli(["run", f, "--out", tmp_path / "out", "-q"], capsys)
    assert code == 0, err
    (run_file,) = (tmp_path / "out").glob("*.h5")
    code, out, err = cli(["resume", run_file], capsys)
    assert_one_line_error(code, out, err, str(run_file), "already completed", "--epochs")


def test_runs_folder_missing(tmp_path, capsys):
    code, out, err = cli(["runs", tmp_path / "nope"], capsys)
    assert_one_line_error(code, out, err, "nope", "no such folder")


# ------------------------------------------------------------ subprocess
def _labtrain_script() -> Path:
    script = Path(sys.executable).parent / "labtrain"
    if not script.exists():
        pytest.skip("console script not installed next to the interpreter")
    return script


def test_console_script_bad_key(tmp_path):
    """The installed ``labtrain`` script: exit status 2 and one line, for real."""
    f = tmp_path / "bad.toml"
    f.write_text(_merge("[learning]\nlerning_rate = 0.1\n"))
    out_dir = tmp_path / "out"
    p = subprocess.run([_labtrain_script(), "run", f, "--out", out_dir], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    assert p.stdout == ""
    assert p.stderr.splitlines() == [
        f"labtrain run: error: {f}: [learning] unknown key 'lerning_rate' (did you mean 'learning_rate'?); "
        "allowed keys: rule, centred, optimizer, learning_rate, lr_halflife_steps, momentum, deadband, "
        "update_fraction, mask_mode, gamma_a_per_v, fp_activation, activation_hz, error_hz, fp_mode, window_s, "
        "settle_s, beta_s, eta"]
    assert not out_dir.exists()


def test_python_m_bad_epochs(tmp_path):
    """``python -m labtrain``: an argument error is one line with exit status 2."""
    f = tmp_path / "good.toml"
    f.write_text(GOOD)
    p = subprocess.run([sys.executable, "-m", "labtrain", "run", f, "--epochs", "0", "--out", tmp_path / "out"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert p.stdout == ""
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert "--epochs" in lines[0] and "'0'" in lines[0]
    assert not (tmp_path / "out").exists()


def test_python_m_bad_run_file(tmp_path):
    path = _bad_run_file(tmp_path, "foreign-hdf5")
    p = subprocess.run([sys.executable, "-m", "labtrain", "show", path], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert p.stderr == f"labtrain show: error: {path}: not a labtrain run file\n"


# -------------------------------------------------------------- examples
@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_check_examples(example, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # check must write nothing (no runs/ folder either)
    code, out, err = cli(["check", example], capsys)
    assert code == 0, err
    assert out.startswith(f"{example}: OK")
    assert list(tmp_path.iterdir()) == []


def test_examples_found():
    assert len(EXAMPLES) >= 2
