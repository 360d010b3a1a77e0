"""``--set section.key=value``: parsing, schema checks, and the run/check/gradcheck/runs commands that take it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import cli

from labtrain.config import ConfigError
from labtrain.overrides import (check_overrides, format_overrides, parse_assignment, parse_axes, parse_sets,
                                parse_value, split_values)
from labtrain.training.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
REGRESSION = ROOT / "examples" / "regression_analytic.toml"
XOR_CL = ROOT / "examples" / "xor_resistor_cl.toml"


def test_values_are_toml_or_plain_strings():
    assert parse_value("0.01") == 0.01 and parse_value("3") == 3 and parse_value("true") is True
    assert parse_value("[2, 4, 1]") == [2, 4, 1]
    assert parse_value("plain_ep") == "plain_ep" and parse_value('"a,b"') == "a,b"
    assert parse_value("/tmp/x y") == "/tmp/x y"
    assert split_values('0.01,0.03, [1,2],"a,b"') == ["0.01", "0.03", " [1,2]", '"a,b"']


def test_assignments_ranges_and_lists():
    assert parse_assignment("run.seed=0:4", many=True) == ("run.seed", [0, 1, 2, 3])
    assert parse_assignment("run.seed=10:4:-3", many=True) == ("run.seed", [10, 7])
    assert parse_assignment("learning.learning_rate=0.01,0.03", many=True) == ("learning.learning_rate",
                                                                               [0.01, 0.03])
    assert parse_assignment("chip.layer_sizes=[2,4,1],[2,8,1]", many=True)[1] == [[2, 4, 1], [2, 8, 1]]
    assert parse_axes(["run.seed=0:2", "learning.rule=cl"]) == {"run.seed": [0, 1], "learning.rule": ["cl"]}
    assert parse_sets(["learning.learning_rate=0.03", "run.epochs=2"]) == {"learning": {"learning_rate": 0.03},
                                                                          "run": {"epochs": 2}}
    assert format_overrides({"learning": {"learning_rate": 0.03}, "run": {"seed": 2}}, skip=("run.seed",)) == \
        "learning.learning_rate=0.03"


@pytest.mark.parametrize("text, needle", [
    ("learning_rate=0.1", "expected section.key=value"),
    ("learnin.rate=0.1", "unknown section [learnin] (did you mean 'learning'?)"),
    ("run.seed=", "no value after '='"),
    ("run.seed=4:4", "is empty"),
    ("run.seed=0:1:0", "step 0"),
])
def test_malformed_assignments_name_the_option(text, needle):
    with pytest.raises(ConfigError) as err:
        parse_assignment(text, many=True)
    assert f"--set {text}" in str(err.value) and needle in str(err.value)


def test_a_key_twice_or_a_list_for_one_run_is_refused():
    with pytest.raises(ConfigError, match="run.seed is set twice"):
        parse_sets(["run.seed=1", "run.seed=2"])
    with pytest.raises(ConfigError, match="one value expected"):
        parse_sets(["run.seed=0,1"])


@pytest.mark.parametrize("overrides, needle", [
    ({"learning": {"learnig_rate": 0.1}}, "--set learning.learnig_rate: unknown key [learning] learnig_rate "
                                          "(did you mean 'learning_rate'?)"),
    ({"chip": {"n_starts": 4}}, "--set chip.n_starts: applies to [chip] type xy"),
    ({"run": {"epochs": 0}}, "--set [run] epochs = 0: out of range"),
    ({"learning": {"optimizer": "adamw"}}, "--set [learning] optimizer = 'adamw': expected one of"),
])
def test_schema_checks_name_the_key(overrides, needle):
    with pytest.raises(ConfigError) as err:
        check_overrides(overrides, "resistor_network")
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_string_keys_take_the_text_and_float_keys_take_integers():
    checked = check_overrides({"experiment": {"name": 2024}, "learning": {"learning_rate": 1}}, "resistor_network")
    assert checked == {"experiment": {"name": "2024"}, "learning": {"learning_rate": 1.0}}


def test_run_stores_the_overrides_and_runs_lists_them(tmp_path, capsys):
    out = tmp_path / "runs"
    code, _, err = cli(["run", REGRESSION, "--set", "learning.learning_rate=0.03", "--set", "run.epochs=2",
                        "--seed", "3", "--out", out, "-q"], capsys)
    assert code == 0, err
    (path,) = out.glob("*.h5")
    with RunStore.open(path) as store:
        assert store.overrides == {"learning": {"learning_rate": 0.03}, "run": {"epochs": 2, "seed": 3,
                                                                               "out_dir": str(out)}}
        assert store.attrs["total_steps"] == 10
    code, text, _ = cli(["runs", out], capsys)
    assert code == 0 and "overrides" in text.splitlines()[0]
    assert "learning.learning_rate=0.03" in text and "run.epochs=2" in text
    code, text, _ = cli(["runs", out, "--json"], capsys)
    rows = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert code == 0 and len(rows) == 1 and rows[0]["overrides"]["learning"] == {"learning_rate": 0.03}
    assert rows[0]["steps_done"] == 10 and rows[0]["status"] == "completed"


@pytest.mark.parametrize("argv, needle", [
    (["run", REGRESSION, "--set", "learning.learnig_rate=0.1"], "--set learning.learnig_rate: unknown key"),
    (["run", REGRESSION, "--set", "run.epochs=0"], "--set [run] epochs = 0: out of range"),
    (["run", REGRESSION, "--epochs", "2", "--set", "run.epochs=3"], "--set run.epochs=... and the option"),
    (["check", REGRESSION, "--set", "chip.n_starts=4"], "--set chip.n_starts: applies to [chip] type xy"),
    (["check", REGRESSION, "--set", "seed=1"], "--set seed=1: expected section.key=value"),
    (["gradcheck", XOR_CL, "--set", "learning.eta=2"], "--set [learning] eta = 2: out of range"),
])
def test_bad_set_is_one_line_exit_2_naming_the_key(argv, needle, tmp_path, capsys):
    code, out, err = cli(argv + ["--out", tmp_path / "runs"] if argv[0] == "run" else argv, capsys)
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and "Traceback" not in err and needle in err, err
    assert not (tmp_path / "runs").exists()


def test_check_and_gradcheck_apply_the_overrides(tmp_path, capsys):
    code, text, err = cli(["check", REGRESSION, "--set", "run.epochs=7", "--set", "run.batch_size=20"], capsys)
    assert code == 0, err
    assert "7 epochs x 7 steps of 20 examples = 49 steps" in text
    code, text, err = cli(["gradcheck", XOR_CL, "--set", "learning.eta=0.25", "--batch", "4"], capsys)
    assert code == 0, err
    assert "eta = 0.25" in text and "eta = 0.1 " not in text
