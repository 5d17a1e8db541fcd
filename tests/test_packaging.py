"""The lowest-dependency CI run pins exactly the minimums pyproject.toml declares."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "ci" / "constraints-lowest.txt"
TRANSITIVE_MARK = "# --- transitive"
# dask's "distributed" extra requires distributed of the same release
EXTRA_PINS = {("dask", "distributed"): "distributed"}


def _project() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["project"]


def _lower_bound(req: Requirement) -> Version:
    lows = [Version(s.version) for s in req.specifier if s.operator == ">="]
    assert len(lows) == 1, f"{req} must declare exactly one '>=' minimum"
    return lows[0]


def _all_requirements(project: dict) -> list[Requirement]:
    """Requirements reachable from ``hcl_stats[all]`` (self-extras expanded)."""
    own = canonicalize_name(project["name"])
    extras = project["optional-dependencies"]
    out = [Requirement(r) for r in project["dependencies"]]
    todo, seen = ["all"], set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in extras[extra]:
            req = Requirement(text)
            if canonicalize_name(req.name) == own:
                todo.extend(req.extras)
            else:
                out.append(req)
    return out


def _pins(text: str) -> dict[str, Version]:
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.]+)", line)
        assert m, f"constraint line must be 'name==version'; got {line!r}"
        name = canonicalize_name(m.group(1))
        assert name not in pins, f"{name} is pinned twice"
        pins[name] = Version(m.group(2))
    return pins


def _sections() -> tuple[dict[str, Version], dict[str, Version]]:
    text = CONSTRAINTS.read_text(encoding="utf-8")
    assert TRANSITIVE_MARK in text
    declared, transitive = text.split(TRANSITIVE_MARK, 1)
    return _pins(declared), _pins(transitive.split("\n", 1)[1])


def _expected_pins(reqs: list[Requirement]) -> dict[str, Version]:
    expected: dict[str, Version] = {}
    for req in reqs:
        low = _lower_bound(req)
        names = [canonicalize_name(req.name)]
        names += [EXTRA_PINS[(names[0], e)] for e in sorted(req.extras)]
        for name in names:
            assert expected.setdefault(name, low) == low, (
                f"{name} declares two minimums: {expected[name]} and {low}"
            )
    return expected


def test_constraints_pin_exactly_the_declared_minimums():
    declared, _ = _sections()
    assert declared == _expected_pins(_all_requirements(_project()))


def test_transitive_pins_are_not_declared_dependencies():
    _, transitive = _sections()
    declared = _expected_pins(_all_requirements(_project()))
    assert transitive.keys().isdisjoint(declared)


def test_every_extra_agrees_on_each_minimum():
    # bench is outside [all] but must not contradict it (e.g. threadpoolctl>=3)
    project = _project()
    reqs = [Requirement(r) for r in project["dependencies"]]
    own = canonicalize_name(project["name"])
    for texts in project["optional-dependencies"].values():
        reqs += [r for r in map(Requirement, texts) if canonicalize_name(r.name) != own]
    lows: dict[str, set[Version]] = {}
    for req in reqs:
        lows.setdefault(canonicalize_name(req.name), set()).add(_lower_bound(req))
    assert {n: v for n, v in lows.items() if len(v) > 1} == {}


def test_expected_pins_catch_drift():
    # the check above is not vacuous: a raised minimum changes the expected pins
    reqs = _all_requirements(_project())
    bumped = [Requirement("numpy>=9.0") if r.name == "numpy" else r for r in reqs]
    assert _expected_pins(bumped)["numpy"] == Version("9.0")
    assert _expected_pins(bumped) != _sections()[0]
    with pytest.raises(AssertionError, match="exactly one '>=' minimum"):
        _lower_bound(Requirement("numpy<3"))


def test_ci_runs_both_dependency_sets_with_one_printed_seed():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.count("python -m venv ") == 2
    assert 'pip install --quiet -e ".[all]"' in ci
    assert 'pip install --quiet -c ci/constraints-lowest.txt -e ".[all]"' in ci
    assert ci.count("run_suite ") >= 2
    assert 'echo "CI: HCL_TEST_SEED=$HCL_TEST_SEED"' in ci
    assert "texlive-latex-recommended" in ci


def test_quiet_run_prints_the_drawn_seed():
    # the README's `python -m pytest -q` hides the report header, so a seed drawn
    # by HCL_TEST_SEED=any must still be printed to make a failure replayable
    import os
    import subprocess
    import sys

    env = {**os.environ, "HCL_TEST_SEED": "any"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_packaging.py::test_transitive_pins_are_not_declared_dependencies"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seeds = re.findall(r"HCL_TEST_SEED seeds: \[(\d+)\]", proc.stdout)
    assert len(seeds) == 1
    assert 0 <= int(seeds[0]) < 100
