"""The README's Python API example runs as written, and its generated reference page is current."""

from __future__ import annotations

import os
import re
from pathlib import Path

import labtrain.config as config

ROOT = Path(__file__).resolve().parents[1]


def test_readme_api_example_runs(tmp_path, capsys):
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python example"
    code = blocks[0].replace('"examples/', f'"{ROOT}/examples/')
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    cosine = float(re.search(r"EP cosine ([0-9.]+)", out).group(1))
    assert cosine > 0.99
    loss = float(re.search(r"completed test loss ([0-9.e+-]+) V\^2", out).group(1))
    assert loss < 1e-4
    assert list((tmp_path / "runs").glob("regression_analytic-*.h5"))


def test_experiment_reference_page_is_current():
    page = (ROOT / "docs" / "experiment-file.md").read_text()
    assert page.strip() == config.schema_markdown().strip(), \
        "docs/experiment-file.md is stale: regenerate it with labtrain.config.schema_markdown()"
