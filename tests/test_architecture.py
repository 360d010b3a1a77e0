"""The shape of the tree, checked: no import cycles, dependencies point one way, kinds stay in their folders.

The static import graph is read from the source (module-level imports; ``if TYPE_CHECKING`` blocks
excluded).  A function-local import is allowed only where it is lazy loading (optional drivers, the GUI,
heavy parts): adding it to the graph must not close a cycle -- that would be a local import dodging one.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "labtrain"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PKG.rglob("*.py")}


def _resolve(module: str, names: list[str]) -> set[str]:
    out = set()
    for name in names:
        out.add(f"{module}.{name}" if f"{module}.{name}" in MODULES else module)
    return out


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(module-level labtrain imports, function-local labtrain imports) of one file."""
    tree = ast.parse(path.read_text())
    top: set[str] = set()
    local: set[str] = set()

    def collect(node: ast.AST, into: set[str]) -> None:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("labtrain") and not node.level:
            into |= _resolve(node.module, [a.name for a in node.names])
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import (use absolute labtrain.* imports)")
        elif isinstance(node, ast.Import):
            into |= {a.name for a in node.names if a.name.startswith("labtrain")}

    def walk(nodes, into, in_function):
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                walk(ast.iter_child_nodes(node), local, True)
                continue
            collect(node, into)
            walk(ast.iter_child_nodes(node), into, in_function)

    walk(tree.body, top, False)
    return top, local


GRAPH: dict[str, set[str]] = {}
LOCAL: dict[str, set[str]] = {}
for _name, _path in MODULES.items():
    GRAPH[_name], LOCAL[_name] = _imports(_path)


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        if node in seen:
            continue
        seen.add(node)
        todo.extend(graph.get(node, ()))
    return False


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            strong(v)
    return out


def test_no_import_cycles():
    # package __init__ files re-export their children; the edge parent -> child is not a dependency
    graph = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in GRAPH.items()}
    assert _cycles(graph) == []


def test_no_function_local_import_dodges_a_cycle():
    dodges = [f"{m} -> {d}" for m, deps in LOCAL.items() for d in deps
              if d in GRAPH and not d.startswith(m + ".") and _reaches(GRAPH, d, m) and m != "labtrain.cli"]
    assert dodges == []


def _matches(module: str, patterns: tuple[str, ...]) -> bool:
    return any(re.fullmatch(p, module) for p in patterns)


#: (who, must not import, why) -- module names as regular expressions
LAYERS = [
    (r"labtrain\.physics(\..*)?|labtrain\.kinds\.\w+\.model", (r"labtrain\.(chip|instruments|simulators|drivers|"
     r"training|gui|protocols|build|config|cli)(\..*)?", r"labtrain\.kinds\.\w+\.(chip|ideal|bench|twin|builder|"
     r"kind|hardware)"), "physics models import nothing of chips, safety, instruments or twins"),
    (r"labtrain\.protocols(\..*)?", (r"labtrain\.(drivers|gui|instruments|simulators|build|config|cli)(\..*)?",
                                     r"labtrain\.kinds(\..*)?"), "rules talk only to the chip contract"),
    (r"labtrain\.chip(\..*)?|labtrain\.kinds\.\w+\.(chip|ideal|bench)",
     (r"labtrain\.(drivers|gui|build|cli|simulators)(\..*)?", r"labtrain\.instruments\.safety",
      r"labtrain\.kinds\.\w+\.(twin|hardware)"),
     "chips never import drivers, the GUI, twins or the safety layer (they get wrapped ports)"),
    (r"labtrain\.(instruments|simulators)(\..*)?", (r"labtrain\.(kinds|training|gui|build|cli|protocols)(\..*)?",),
     "instruments and their twins are shared by every kind"),
    (r"labtrain\.drivers(\..*)?", (r"labtrain\.(kinds|training|gui|build|cli|protocols|chip|simulators)(\..*)?",),
     "drivers know only the port contracts"),
    (r"labtrain\.training(\..*)?", (r"labtrain\.(gui|cli|drivers)(\..*)?", r"labtrain\.kinds\..*"),
     "the training loop is kind-agnostic"),
    (r"labtrain\.(config|build|registry|schema)", (r"labtrain\.kinds\.\w+(\..*)?", r"labtrain\.(gui|cli)(\..*)?"),
     "front ends reach the kinds through the registry only"),
    (r"labtrain\.(?!gui|cli).*", (r"labtrain\.gui(\..*)?",), "nothing but the CLI opens the GUI"),
]


@pytest.mark.parametrize("who, forbidden, why", LAYERS, ids=[w for _, _, w in LAYERS])
def test_dependencies_point_one_way(who, forbidden, why):
    breaks = sorted(f"{m} -> {d}" for m, deps in GRAPH.items() if _matches(m, (who,))
                    for d in deps | LOCAL[m] if _matches(d, forbidden))
    assert breaks == [], why


KIND_DIRS = {"resistor_network": "resistor", "xy": "xy", "nonreciprocal": "nonreciprocal",
             "nonlinear_resistor": "nonlinear", "dnpu": "dnpu"}


@pytest.mark.parametrize("kind", sorted(KIND_DIRS))
def test_a_kind_is_named_only_in_its_folder_and_the_registry(kind):
    """Outside ``labtrain/kinds/<kind>/`` the kind's name appears only in the registry (and docs)."""
    folder = PKG / "kinds" / KIND_DIRS[kind]
    pattern = re.compile(rf"[\"']{kind}[\"']")
    found = sorted(str(p.relative_to(ROOT)) for p in PKG.rglob("*.py")
                   if folder not in p.parents and p != PKG / "registry.py" and pattern.search(p.read_text()))
    assert found == []


def test_no_getattr_probes_on_chips():
    """What a rule, the run loop or the GUI asks a chip is a method or a declared attribute of the contract."""
    probe = re.compile(r"(getattr|hasattr)\(\s*(self\.)?(run\.)?chip\b")
    found = sorted(f"{p.relative_to(ROOT)}:{i}" for p in PKG.rglob("*.py")
                   for i, line in enumerate(p.read_text().splitlines(), 1) if probe.search(line))
    assert found == []
