"""Sphinx configuration of labtrain's documentation site (``make docs``).

The site is built from the guides in this folder (Markdown, read by myst-parser), the
docstrings of the public modules (autodoc + napoleon) and the command-line parser
(:func:`labtrain.cli.build_parser`, read by sphinx-argparse).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))          # the checkout's package, also when it is not installed

import labtrain  # noqa: E402

project = "labtrain"
author = "labtrain contributors"
copyright = "labtrain contributors (MIT licence)"
release = labtrain.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinxarg.ext",
]

smartquotes = False                 # "--full" stays two hyphens in the CLI reference
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# --- MyST: GitHub-style heading anchors, so the guides' "#3-coupled-learning-cl" links work
myst_heading_anchors = 4
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]

# --- autodoc / napoleon (numpy-style docstrings)
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
# Optional hardware and GUI stacks: documented without being installed.
autodoc_mock_imports = ["nidaqmx", "pyftdi", "skimage", "sksparse", "torch"]
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True          # "Attributes" sections as fields: no second description of dataclass fields

# --- HTML
html_theme = "furo" if __import__("importlib.util").util.find_spec("furo") else "alabaster"
html_title = f"labtrain {release}"
html_static_path: list[str] = []


# --- numpy-style array types: "ndarray, shape (B, n_outputs)" is a shape, not a list of classes.
# Sphinx turns every word of a plain-text type field into a cross-reference, and a dimension named
# like an attribute (``n_outputs``, ``m``) then matches several objects.  After napoleon has made
# the ``:type x:`` fields, a type with parentheses is shown as a literal instead.
_TYPE_FIELD = re.compile(r"^(\s*:(?:type|vartype|rtype)(?: [^:]+)?: )(.*\(.*)$")


def _literal_shape_types(app, what, name, obj, options, lines):
    for i, line in enumerate(lines):
        match = _TYPE_FIELD.match(line)
        if match and "`" not in match.group(2):
            lines[i] = f"{match.group(1)}``{match.group(2).strip()}``"


def setup(app):
    app.connect("autodoc-process-docstring", _literal_shape_types, priority=600)   # after napoleon (500)
