"""The runner: identical results for any backend/jobs/order, resume, failures, replay."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import pytest
from _study_helpers import values, write_tiny

from hcl_stats import estimators
from hcl_stats.cli import main
from hcl_stats.estimators import NaivePCA
from hcl_stats.study import load_study
from hcl_stats.study.runner import compute_unit, plan, run_study
from hcl_stats.study.store import ResultStore


def _run(study, path, **kw):
    with ResultStore(path) as store:
        report = run_study(study, store, quiet=True, **kw)
        return report, values(store), store.count("results"), store.count("units")


def test_jobs1_and_jobs2_store_identical_values(tmp_path):
    study = load_study(write_tiny(tmp_path, reps=2))
    r1, v1, n1, u1 = _run(study, tmp_path / "a.sqlite", jobs=1)
    r2, v2, n2, u2 = _run(study, tmp_path / "b.sqlite", backend="process", jobs=2)
    assert r1.backend == "serial"
    assert r2.backend == "process"
    assert u1 == u2 == len(study.cells) * 2 * len(study.estimators)
    assert n1 == n2
    assert v1 == v2
    assert r1.failed_units == 0


def test_resume_in_pieces_equals_one_run(tmp_path):
    study = load_study(write_tiny(tmp_path, reps=3))
    _, full, n_full, _ = _run(study, tmp_path / "full.sqlite", backend="serial")
    path = tmp_path / "pieces.sqlite"
    rep1, *_ = _run(study, path, backend="serial", reps=1, estimators=["schur"])
    assert rep1.written_units == len(study.cells)
    rep2, *_ = _run(study, path, backend="serial", where=["n_samples=200"])
    rep3, pieces, n_pieces, _ = _run(study, path, backend="serial")
    assert rep3.skipped_units > 0
    rep4, _, _, _ = _run(study, path, backend="serial")
    assert rep4.planned_units == 0
    assert rep4.written_units == 0
    assert n_pieces == n_full
    assert pieces == full


def test_common_random_numbers_across_estimator_labels(tmp_path):
    cfg = write_tiny(tmp_path, reps=1, ns="[100]", extra="[estimators.schur_again]\nname = 'schur'")
    study = load_study(cfg)
    recs = {r.estimator: r for r in compute_unit(study, 0, 0, tuple(study.estimators))}
    a = {k: v for k, v in recs["schur"].values.items() if k[0] != "wall_time"}
    b = {k: v for k, v in recs["schur_again"].values.items() if k[0] != "wall_time"}
    assert a == b
    assert len(a) > 5


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Broken(NaivePCA):
    name: ClassVar[str] = "broken_for_tests"

    def _fit(self, *args, **kwargs):
        raise FloatingPointError("deliberate failure")


def test_failure_is_recorded_not_fatal_and_shown_in_status(tmp_path, capsys):
    estimators.register(_Broken)
    try:
        cfg = write_tiny(tmp_path, reps=2, ns="[50]", extra="[estimators.broken]\nname = 'broken_for_tests'")
        db = tmp_path / "s.sqlite"
        assert main(["run", str(cfg), "--jobs", "1", "--store", str(db), "--quiet"]) == 0
        assert main(["run", str(cfg), "--jobs", "1", "--store", str(db), "--quiet", "--strict",
                     "--retry-failed"]) == 1
        capsys.readouterr()
        assert main(["status", str(cfg), "--store", str(db)]) == 0
        out = capsys.readouterr().out
        assert "FloatingPointError: deliberate failure" in out
        line = next(x for x in out.splitlines() if x.startswith("broken "))
        assert line.split()[1:3] == ["0", "2"]
        with ResultStore(db, readonly=True) as store:
            ok = store.query("SELECT COUNT(*) FROM units WHERE status='ok'")[0][0]
            assert ok == 2 * 4
    finally:
        estimators._REGISTRY.pop("broken_for_tests")


def test_plan_filters_and_errors(tmp_path):
    study = load_study(write_tiny(tmp_path, reps=2))
    items, skipped = plan(study, where=["n_samples=50"], estimators=["naive"])
    assert [(i.rep, i.labels) for i in items] == [(0, ("naive",)), (1, ("naive",))]
    assert skipped == 0
    cell = study.cells[0]
    done = {(cell.id, 0, e) for e in study.estimators}
    items, skipped = plan(study, done)
    assert skipped == len(study.estimators)
    assert len(items) == 2 * 2 - 1
    with pytest.raises(ValueError, match="--where key"):
        plan(study, where=["colour=1"])
    with pytest.raises(ValueError, match="--estimator must be one of"):
        plan(study, estimators=["nope"])
    items, _ = plan(study, where=[f"cell={cell.id[:6]}"])
    assert {i.cell_index for i in items} == {0}


def test_replay_reproduces_stored_rows(tmp_path, capsys):
    cfg = write_tiny(tmp_path, reps=2, ns="[50]")
    db = tmp_path / "s.sqlite"
    assert main(["run", str(cfg), "--jobs", "1", "--store", str(db), "--quiet"]) == 0
    cell = load_study(cfg).cells[0]
    capsys.readouterr()
    assert main(["replay", str(cfg), "--store", str(db), "--cell", cell.id[:8], "--rep", "1"]) == 0
    out = capsys.readouterr().out
    assert "(= stored)" in out
    assert "MISMATCH" not in out
    # tamper with one stored value: replay must notice
    import sqlite3

    con = sqlite3.connect(db)
    con.execute("UPDATE results SET value = value + 1 WHERE rep = 1 AND metric = 'overall_gram' "
                "AND estimator = 'schur'")
    con.commit()
    con.close()
    assert main(["replay", str(cfg), "--store", str(db), "--cell", cell.id, "--rep", "1"]) == 1
    assert "MISMATCH" in capsys.readouterr().out


def test_validate_prints_cells_and_cost(tmp_path, capsys):
    cfg = write_tiny(tmp_path, reps=4)
    assert main(["validate", str(cfg), "--probe"]) == 0
    out = capsys.readouterr().out
    assert "cells: 2" in out
    assert "units: 8" in out
    assert "estimated serial cost" in out
    assert "probe:" in out
    bad = tmp_path / "bad.toml"
    bad.write_text(cfg.read_text().replace("replications = 4", "replications = -1"))
    assert main(["validate", str(bad)]) == 2
    assert "study.replications must be an integer >= 1; got -1." in capsys.readouterr().err
