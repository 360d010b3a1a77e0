"""The documentation site (docs/, Sphinx) builds without a single warning.

``make docs`` builds the same site into docs/_build/html.  The docs tools come with the ``test``
and ``docs`` extras; without them this test skips with the reason.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TOOLS = {"sphinx": "sphinx", "myst_parser": "myst-parser", "sphinxarg": "sphinx-argparse"}

missing = [name for module, name in TOOLS.items() if importlib.util.find_spec(module) is None]
pytestmark = pytest.mark.skipif(bool(missing), reason=f"docs tools not installed ({', '.join(missing)}): "
                                "pip install -e '.[docs]'")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    html, doctrees = out / "html", out / "doctrees"
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-E", "-q",
                           "-d", str(doctrees), str(DOCS), str(html)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"the docs build failed or warned:\n{proc.stderr[-6000:]}"
    return html


def test_every_guide_is_a_page(site):
    for page in DOCS.glob("*.md"):
        assert (site / page.with_suffix(".html").name).is_file(), page.name


def test_cli_reference_covers_every_command(site):
    from labtrain.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    text = (site / "cli.html").read_text()
    for name in commands:
        assert re.search(rf">\s*{re.escape(name)}\s*<", text), f"labtrain {name} is missing from the CLI reference"


def test_api_reference_documents_the_public_modules(site):
    text = "".join(p.read_text() for p in (site / "api").glob("*.html"))
    for name in ("labtrain.chip.base.Chip", "labtrain.training.run.Run", "labtrain.training.store.RunStore",
                 "labtrain.kinds.ChipKind", "labtrain.linalg.SPDSolver", "labtrain.instruments.safety"):
        assert f'id="{name}' in text, f"{name} is not in the API reference"


def test_no_page_cites_files_outside_the_repository(site):
    for page in site.rglob("*.html"):
        text = page.read_text()
        assert "../shared" not in text and "shared/data" not in text, f"{page.name} cites a file outside the repo"
