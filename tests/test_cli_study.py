"""``hcl-stats validate``, ``status`` and ``replay`` on a tiny study, read line by line."""

from __future__ import annotations

import json

import pytest
from _study_helpers import write_tiny

from hcl_stats.cli import main
from hcl_stats.study.config import load_study
from hcl_stats.study.store import ResultStore

LABELS = ["naive", "schur", "schur_per_view", "masked_gradient"]


def _lines(capsys) -> list[str]:
    return capsys.readouterr().out.splitlines()


@pytest.fixture
def tiny(tmp_path):
    """A tiny study (one cell, two replicates, four estimators) and its store path."""
    cfg = write_tiny(tmp_path / "study", reps=2, ns="[50]")
    return cfg, tmp_path / "study" / "s.sqlite"


def _run(cfg, db, capsys) -> None:
    assert main(["run", str(cfg), "--jobs", "1", "--store", str(db), "--quiet"]) == 0
    capsys.readouterr()


def test_validate_prints_the_plan_and_writes_nothing(tiny, capsys):
    cfg, db = tiny
    assert main(["validate", str(cfg), "--store", str(db)]) == 0
    lines = _lines(capsys)
    assert lines[:7] == [
        f"study tiny ({cfg}): OK",
        "question: Tiny test study.",
        "kind recovery, sampler data, seed 7",
        "cells: 1 (grid factors: n_samples); replications: 2",
        "estimators: naive (naive), schur (schur), schur_per_view (schur), "
        "masked_gradient (masked_gradient)",
        "metrics: block_gram, overall_gram, structure_gram, wall_time, converged",
        "units: 2 (cell x replicate), fits: 8",
    ]
    assert lines[7].startswith("estimated serial cost (heuristic): ")
    for label in LABELS:
        assert f" {label} " in lines[7]
    # 50 x 15 samples and a 15 x 15 covariance: (750 + 225) * 8 bytes
    assert lines[8] == (f"largest unit's data: {975 * 8 / 2**20:.3g} MiB for (n_samples) x d "
                        "samples and the d x d covariance; cell n_samples=50, dims=[4, 5, 6]")
    assert len(lines) == 9  # no store yet: no line about stored fits
    assert sorted(p.name for p in cfg.parent.iterdir()) == ["tiny.toml"]


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_study_whose_units_cannot_fit_in_memory_is_refused(tmp_path, capsys, command):
    # n = 10^13 samples of 15 columns: 1.1e6 GiB per replicate with the data sampler
    cfg = write_tiny(tmp_path / "study", reps=1, ns="[10000000000000]")
    assert main([command, str(cfg), "--store", str(tmp_path / "s.sqlite")]) == 2
    err = capsys.readouterr().err
    assert "the cell (n_samples=10000000000000, dims=[4, 5, 6]) needs at least" in err
    assert "GiB of memory; lower n_samples, dims, or use sampler = 'wishart'" in err
    assert not (tmp_path / "s.sqlite").exists()


def test_run_checks_the_memory_of_the_cells_it_runs_only(tmp_path, capsys):
    cfg = write_tiny(tmp_path / "study", reps=1, ns="[50, 10000000000000]")
    db = tmp_path / "s.sqlite"
    assert main(["run", str(cfg), "--store", str(db), "--jobs", "1", "--quiet",
                 "--estimator", "naive", "--where", "n_samples=50"]) == 0
    assert main(["run", str(cfg), "--store", str(db), "--jobs", "1", "--quiet"]) == 2
    assert "(n_samples=10000000000000, dims=[4, 5, 6])" in capsys.readouterr().err


DOWNSTREAM = """
[study]
question = "memory of a downstream unit"
kind = "downstream"
replications = 1
seed = 1
sampler = "wishart"
metrics = ["ds_beta_error"]
[scenario]
dims = [20, 20, 20]
structure = "all:1"
noise_var = 0.1
noise_var_y = 0.1
n_samples = 2000
[grid]
m_samples = [100, 100000000]
[estimators.schur]
"""


def test_labelled_rows_count_with_either_sampler(tmp_path, capsys):
    # a downstream unit draws m x d labelled rows even with the Wishart sampler:
    # m = 1e8 at d = 60 is 44.7 GiB, and the cell named is that one, not m = 100
    cfg = tmp_path / "ds.toml"
    cfg.write_text(DOWNSTREAM)
    assert main(["validate", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "the cell (m_samples=100000000, dims=[20, 20, 20], n_samples=2000) needs" in err
    assert "for (m_samples) x d samples and the d x d covariance" in err
    assert "lower m_samples, dims." in err  # no Wishart advice: m is drawn either way
    cfg.write_text(DOWNSTREAM.replace("[100, 100000000]", "[100, 200]"))
    assert main(["validate", str(cfg)]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line == (f"largest unit's data: {60 * (60 + 200) * 8 / 2**20:.3g} MiB for "
                    "(m_samples) x d samples and the d x d covariance; cell m_samples=200, "
                    "dims=[20, 20, 20], n_samples=2000")


def test_validate_counts_the_fits_already_stored(tiny, capsys):
    cfg, db = tiny
    _run(cfg, db, capsys)
    assert main(["validate", str(cfg), "--store", str(db)]) == 0
    last = _lines(capsys)[-1]
    assert last.startswith(f"store {db}: 8 fits done, 0 missing; measured fit time")
    assert main(["validate", str(cfg), "--store", str(db), "--reps", "1"]) == 0
    lines = _lines(capsys)
    assert "units: 1 (cell x replicate), fits: 4" in lines
    assert lines[-1].startswith(f"store {db}: 4 fits done, 0 missing;")


def test_status_reports_every_estimator_complete(tiny, capsys):
    cfg, db = tiny
    _run(cfg, db, capsys)
    assert main(["status", str(cfg), "--store", str(db)]) == 0
    lines = _lines(capsys)
    assert lines[0] == f"study tiny: 1 cells x 2 replications; store {db}"
    assert lines[1].split() == ["estimator", "ok", "failed", "missing", "expected"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:6]}
    assert rows == {label: ["2", "0", "0", "2"] for label in LABELS}
    with ResultStore(db, readonly=True) as store:
        n_rows = store.count("results")
    assert n_rows > 0
    assert lines[6] == f"result rows: {n_rows}"
    assert not any("failed:" in line for line in lines)
    [run] = [line for line in lines if line.startswith("run ")]
    assert "backend serial jobs 1: 2 units in " in run


def test_replay_matches_every_stored_value(tiny, capsys):
    cfg, db = tiny
    _run(cfg, db, capsys)
    cell = load_study(cfg).cells[0]
    assert main(["replay", str(cfg), "--store", str(db), "--cell", cell.id[:6], "--rep", "1"]) == 0
    lines = _lines(capsys)
    assert lines[0] == f"cell {cell.id} {json.dumps({'n_samples': 50})} rep 1"
    heads = [line for line in lines if line.startswith("[")]
    assert [h.split("]")[0][1:] for h in heads] == LABELS
    assert all(" ok (" in h for h in heads)
    with ResultStore(db, readonly=True) as store:
        stored = {
            (e, m, lab): v
            for e, m, lab, v in store.query(
                "SELECT estimator, metric, label, value FROM results "
                "WHERE cell_id=? AND rep=1", [cell.id]
            )
        }
    shown = {}
    for line in lines[1:]:
        if line.startswith("["):
            estimator = line[1:].split("]")[0]
            continue
        metric, label, value, *note = line.split()
        shown[(estimator, metric, label)] = (float(value), " ".join(note))
    assert shown.keys() == stored.keys()
    for key, (value, note) in shown.items():
        if key[1] == "wall_time":
            assert note == "(timing)"
        else:
            assert (value, note) == (stored[key], "(= stored)")


def test_replay_one_estimator_without_a_store_writes_nothing(tiny, capsys):
    cfg, db = tiny
    cell = load_study(cfg).cells[0]
    args = ["replay", str(cfg), "--store", str(db), "--cell", cell.id, "--rep", "0"]
    assert main([*args, "--estimator", "naive"]) == 0
    lines = _lines(capsys)
    assert [line for line in lines if line.startswith("[")][0].startswith("[naive] ok (")
    assert sum(line.startswith("[") for line in lines) == 1
    assert not any("stored" in line or "timing" in line for line in lines)
    assert not db.exists()
    bad = ["replay", str(cfg), "--store", str(db), "--cell", "zz", "--rep", "0"]
    assert main(bad) == 2
    assert "cell must be a unique prefix of one of the 1 cell ids" in capsys.readouterr().err
