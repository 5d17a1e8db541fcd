"""Smoke test: the benchmark scripts run end to end in --quick mode (a few seconds)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

pytest.importorskip("threadpoolctl")

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_mode_runs_and_reports_ratios():
    core = _load("bench_core")
    rows = core.run(quick=True, runs=3)
    names = " ".join(r.name for r in rows)
    for key in ("one numpy.linalg.eigh", "X^T X", "refinement", "Wishart", "peak memory"):
        assert key in names
    for row in rows:
        assert row.ratios, row.name
        assert all(math.isfinite(r) and r > 0 for r in row.ratios), row.name
    table = _load("_harness").table(rows)
    assert table.count("\n") == len(rows) + 1

    mc = _load("bench_montecarlo")
    (row,) = mc.run(quick=True, reps=1, jobs=(1,))
    assert row.ratios[0] > 0


def test_fit_and_montecarlo_cpu_benchmarks_run_in_quick_mode():
    fit = _load("bench_fit")
    rows = fit.run(quick=True, runs=1, cpu=True, profile=True)
    assert "load + X^T X" in rows[0].name
    assert rows[0].ratios[0] > 0
    phases = {r.name for r in rows[1:]}
    assert any("refinement" in p for p in phases)
    assert any("covariance" in p for p in phases)

    mc = _load("bench_montecarlo")
    share, *grid = mc.run(quick=True, reps=1, cpu=True)
    assert len(share.ratios) == 2 * 1  # two cells, one replicate each
    assert all(r > 0 for r in share.ratios)
    assert [g.den[0] for g in grid] == [10.0, 10.0]


def test_view_weights_accuracy_benchmark_runs_in_quick_mode():
    vw = _load("bench_view_weights")
    (row,) = vw.run(quick=True)
    assert len(row.ratios) == 2
    assert all(math.isfinite(r) and r > 0 for r in row.ratios)
    assert "wins" in row.note
