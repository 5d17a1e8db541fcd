"""Architecture guards: the package's import graph and the size of its rooms.

Run as a script to print the measurements quoted in the README::

    python tests/test_architecture.py [PACKAGE_DIR]

The import graph is read from the source with :mod:`ast` (nothing is
imported): a node is a module of ``hcl_stats``; an edge ``a -> b`` is an
``import`` or ``from ... import`` statement anywhere in ``a`` (also inside a
function) that names ``b``; ``from pkg import name`` counts as an import of
``pkg.name`` when that is a module and of ``pkg`` otherwise. Imports under
``if TYPE_CHECKING:`` are skipped. The parent packages that Python runs
implicitly are not edges. A layer is the length of the longest import chain
below a module; an upward import is an edge inside an import cycle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "hcl_stats"
MAX_MODULE_LINES = 800
MAX_FUNCTION_LINES = 100


def _module_name(path: Path, package_dir: Path) -> str:
    rel = path.relative_to(package_dir.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules(package_dir: Path) -> dict[str, Path]:
    return {_module_name(p, package_dir): p for p in sorted(package_dir.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST):
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def import_graph(package_dir: Path = PACKAGE) -> dict[str, set[str]]:
    """Edges ``module -> imported modules`` inside the package."""
    mods = _modules(package_dir)
    top = package_dir.name
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        here = name.split(".") if is_pkg else name.split(".")[:-1]
        for node in _import_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = here[: len(here) - (node.level - 1)] if node.level else []
                stem = ".".join(base + ([node.module] if node.module else []))
                targets = []
                for alias in node.names:
                    sub = f"{stem}.{alias.name}"
                    targets.append(sub if sub in mods else stem)
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t.split(".")[0] == top and t != name:
                    graph[name].add(t)
    return graph


def _sccs(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
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
            out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_name_imports(package_dir: Path = PACKAGE) -> list[str]:
    """Underscore-prefixed names that one module takes from another module.

    Flags ``from pkg.mod import _name`` and ``mod._name`` where ``mod`` was
    bound by an import of another package module. A private *module*
    (``from . import _rmt``, ``from ._rmt import mp_median``) is allowed: it
    holds public names meant for use inside the package. Dunder names are
    allowed. Returns ``"module:line: target._name"`` strings.
    """
    mods = _modules(package_dir)
    top = package_dir.name
    out = []
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        here = name.split(".") if is_pkg else name.split(".")[:-1]
        tree = ast.parse(path.read_text())
        bound: dict[str, str] = {}
        for node in _import_nodes(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == top:
                        key = alias.asname or top
                        bound[key] = alias.name if alias.asname else top
                continue
            base = here[: len(here) - (node.level - 1)] if node.level else []
            stem = ".".join(base + ([node.module] if node.module else []))
            if stem.split(".")[0] != top:
                continue
            for alias in node.names:
                sub = f"{stem}.{alias.name}"
                if sub in mods:
                    bound[alias.asname or alias.name] = sub
                elif _is_private(alias.name) and stem != name:
                    out.append(f"{name}:{node.lineno}: {sub}")
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and _is_private(node.attr)):
                continue
            chain, value = [], node.value
            while isinstance(value, ast.Attribute):
                chain.insert(0, value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in bound:
                target = ".".join([bound[value.id], *chain])
                if target != name and target in mods:
                    out.append(f"{name}:{node.lineno}: {target}.{node.attr}")
    return sorted(out)


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module."""
    return [c for c in _sccs(graph) if len(c) > 1]


def graph_summary(package_dir: Path = PACKAGE) -> dict[str, object]:
    """Modules, edges, layers, cycles and upward imports of the package."""
    graph = import_graph(package_dir)
    comps = _sccs(graph)
    comp_of = {m: i for i, c in enumerate(comps) for m in c}
    depth: dict[int, int] = {}
    for i, comp in enumerate(comps):  # Tarjan yields sinks first
        below = {comp_of[w] for m in comp for w in graph[m]} - {i}
        depth[i] = 1 + max((depth[j] for j in below), default=0)
    upward = sum(1 for a, bs in graph.items() for b in bs if comp_of[a] == comp_of[b])
    return {
        "modules": len(graph),
        "edges": sum(len(v) for v in graph.values()),
        "layers": max(depth.values()),
        "cycles": [c for c in comps if len(c) > 1],
        "upward_imports": upward,
    }


def function_lengths(package_dir: Path = PACKAGE) -> list[tuple[int, str]]:
    """Body length in lines of every function, ``(lines, "module:qualname")``."""
    out = []
    for name, path in _modules(package_dir).items():
        tree = ast.parse(path.read_text())

        def walk(node: ast.AST, prefix: str, name: str = name) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                    body = child.body
                    first = body[0]
                    if (
                        isinstance(first, ast.Expr)
                        and isinstance(first.value, ast.Constant)
                        and isinstance(first.value.value, str)
                        and len(body) > 1
                    ):
                        first = body[1]  # the docstring is not body
                    lines = body[-1].end_lineno - first.lineno + 1
                    qual = f"{prefix}{child.name}"
                    out.append((lines, f"{name}:{qual}"))
                    walk(child, qual + ".")
                elif isinstance(child, ast.ClassDef):
                    walk(child, f"{prefix}{child.name}.")
                else:
                    walk(child, prefix)

        walk(tree, "")
    return sorted(out, reverse=True)


def module_lengths(package_dir: Path = PACKAGE) -> list[tuple[int, str]]:
    """Line count of every module, largest first."""
    return sorted(
        ((len(p.read_text().splitlines()), n) for n, p in _modules(package_dir).items()),
        reverse=True,
    )


def test_no_import_cycles():
    assert import_cycles(import_graph()) == []


def test_no_private_name_crosses_a_module():
    assert private_name_imports() == []


def test_private_name_detector_sees_a_crossing(tmp_path):
    pkg = tmp_path / "hcl_stats"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "_priv.py").write_text("def helper():\n    pass\n")
    (pkg / "a.py").write_text("def _x():\n    pass\n\n\ny = _x\n")
    (pkg / "sub" / "b.py").write_text(
        "from .. import _priv\n"
        "from .._priv import helper\n"
        "from ..a import _x\n"
        "from .. import a\n"
        "import hcl_stats.a as aa\n"
        "def f():\n"
        "    return a._x, aa._x, helper, _priv.helper, a.__name__\n"
    )
    assert private_name_imports(pkg) == [
        "hcl_stats.sub.b:3: hcl_stats.a._x",
        "hcl_stats.sub.b:7: hcl_stats.a._x",
        "hcl_stats.sub.b:7: hcl_stats.a._x",
    ]


def test_cycle_detector_sees_a_cycle(tmp_path):
    pkg = tmp_path / "hcl_stats"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from . import b\n")
    (pkg / "b.py").write_text("from .a import f\n")
    (pkg / "c.py").write_text("from . import a\n")
    graph = import_graph(pkg)
    assert graph["hcl_stats.c"] == {"hcl_stats.a"}
    assert import_cycles(graph) == [["hcl_stats.a", "hcl_stats.b"]]
    summary = graph_summary(pkg)
    assert summary["upward_imports"] == 2
    assert summary["layers"] == 2


def _fresh_python(code: str) -> str:
    """Standard output of ``code`` run by a fresh interpreter on this checkout."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
    ).stdout


def test_import_does_not_load_the_study_harness():
    code = (
        "import sys, hcl_stats\n"
        "bad = sorted(m for m in sys.modules if m == 'tomllib' or "
        "m.startswith('hcl_stats.study') or m.startswith('hcl_stats.cli'))\n"
        "print(','.join(bad))\n"
    )
    assert _fresh_python(code).strip() == ""


def test_import_defers_the_sub_packages_until_first_use():
    """``import hcl_stats`` loads no estimator, downstream or theory module (PEP 562)."""
    code = (
        "import sys, hcl_stats as hs\n"
        "lazy = ('hcl_stats.estimators', 'hcl_stats.downstream', 'hcl_stats.theory', "
        "'hcl_stats.metrics', 'hcl_stats.identifiability', 'hcl_stats.datasets')\n"
        "print(','.join(m for m in lazy if m in sys.modules))\n"
        "print(hs.estimators.get('schur').__name__, hs.check_identifiable.__name__, "
        "hs.theory.__name__, 'downstream' in dir(hs))\n"
        "print(hs.datasets.from_mudata.__name__, 'datasets' in dir(hs))\n"
        "from hcl_stats import downstream, Condition\n"
        "print(downstream.__name__, Condition.__name__)\n"
        "try:\n"
        "    hs.no_such_name\n"
        "except AttributeError as exc:\n"
        "    print(exc)\n"
    )
    assert _fresh_python(code).splitlines() == [
        "",
        "SchurComplement check_identifiable hcl_stats.theory True",
        "from_mudata True",
        "hcl_stats.downstream Condition",
        "module 'hcl_stats' has no attribute 'no_such_name'",
    ]


@pytest.mark.parametrize(
    ("old", "new", "name"),
    [
        ("hcl_stats.runner", "hcl_stats.study.runner", "run_study"),
        ("hcl_stats.store", "hcl_stats.study.store", "ResultStore"),
        ("hcl_stats.theory_plots", "hcl_stats.theory.plots", "plot_rate"),
    ],
)
def test_moved_modules_keep_working_with_a_deprecation_warning(old, new, name):
    import importlib

    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)


def test_tables_summarize_moved_with_a_deprecation_warning():
    from hcl_stats import tables
    from hcl_stats.study.summary import summarize

    with pytest.warns(DeprecationWarning, match="hcl_stats.study.summary"):
        assert tables.summarize is summarize


def _handlers(parser, path=()):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                func = sub.get_default("func")
                if func is not None:
                    yield (*path, name), func
                yield from _handlers(sub, (*path, name))


def test_cli_handlers_are_named_run():
    from hcl_stats.cli import build_parser

    handlers = dict(_handlers(build_parser()))
    assert {"validate", "run", "status", "replay", "report", "fit"} <= {p[0] for p in handlers}
    bad = {" ".join(p): f.__name__ for p, f in handlers.items() if not f.__name__.startswith("run_")}
    assert bad == {}
    for p, f in handlers.items():
        assert f.__module__.startswith("hcl_stats.cli."), (p, f.__module__)
    cmd = [
        f"{name}:{node.name}"
        for name, path in _modules(PACKAGE).items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef) and node.name.startswith(("cmd_", "_cmd_"))
    ]
    assert cmd == []


def test_no_module_over_limit():
    over = [(n, m) for n, m in module_lengths() if n > MAX_MODULE_LINES]
    assert over == []


def test_no_function_body_over_limit():
    over = [(n, f) for n, f in function_lengths() if n > MAX_FUNCTION_LINES]
    assert over == []


def test_function_length_counts_body_lines(tmp_path):
    pkg = tmp_path / "hcl_stats"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    src = 'class C:\n    def f(self):\n        """Doc."""\n        a = 1\n\n        return a\n'
    (pkg / "m.py").write_text(src)
    assert function_lengths(pkg) == [(3, "hcl_stats.m:C.f")]


if __name__ == "__main__":
    pkg = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else PACKAGE
    summary = graph_summary(pkg)
    print(f"modules {summary['modules']}  edges {summary['edges']}  layers {summary['layers']}")
    print(f"cycles {len(summary['cycles'])}: {summary['cycles']}")
    print(f"upward imports (edges inside a cycle) {summary['upward_imports']}")
    print("private names crossing modules:", private_name_imports(pkg))
    print("largest modules:", module_lengths(pkg)[:3])
    print("longest function bodies:", function_lengths(pkg)[:10])
