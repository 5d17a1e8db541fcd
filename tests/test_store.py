"""The SQLite result store: transactions, uniqueness, compatibility checks, export."""

from __future__ import annotations

import sqlite3

import pytest
from _study_helpers import write_tiny

from hcl_stats.cli import main
from hcl_stats.exceptions import StoreVersionMismatch
from hcl_stats.study import load_study
from hcl_stats.study.store import ResultStore, UnitRecord

PROV = {"package_version": "0", "git_commit": None, "git_dirty": None}


def _write(store, cell, rep, recs):
    store.write_unit(cell, rep, recs, seed_key="[]", run_id=None, config_digest="x", prov=PROV)


def test_wal_mode_and_unit_transaction(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as store:
        mode = store.query("PRAGMA journal_mode")[0][0]
        assert mode == "wal"
        ok = UnitRecord("a", "ok", None, 0.1, {("m", "x"): 1.0, ("m", "y"): float("nan")})
        _write(store, "c1", 0, [ok, UnitRecord("b", "ok", None, 0.1, {("m", "x"): 2.0})])
        assert store.count("results") == 3
        assert store.count("units") == 2
        assert store.query("SELECT value FROM results WHERE label='y'") == [(None,)]
        # a duplicate unit in a batch rolls back the whole (cell, rep) transaction
        new = UnitRecord("c", "ok", None, 0.1, {("m", "x"): 3.0})
        with pytest.raises(sqlite3.IntegrityError):
            _write(store, "c1", 0, [new, ok])
        assert store.count("results") == 3
        assert store.count("units") == 2
        assert store.done() == {("c1", 0, "a"), ("c1", 0, "b")}


def test_failed_unit_is_replaced_on_retry(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as store:
        _write(store, "c1", 0, [UnitRecord("a", "failed", "ValueError: boom", 0.0, {})])
        assert store.done(include_failed=False) == set()
        assert store.done() == {("c1", 0, "a")}
        _write(store, "c1", 0, [UnitRecord("a", "ok", None, 0.0, {("m", "x"): 1.0})])
        assert store.query("SELECT status, error FROM units") == [("ok", None)]
        assert store.count("results") == 1


def test_prepare_refuses_incompatible_appends(tmp_path):
    study = load_study(write_tiny(tmp_path / "a"))
    path = tmp_path / "s.sqlite"
    with ResultStore(path) as store:
        store.prepare(study)
        store.prepare(study)  # idempotent
        assert store.count("cells") == len(study.cells)
    other_seed = load_study(write_tiny(tmp_path / "b", seed=8))
    with ResultStore(path) as store, pytest.raises(StoreVersionMismatch, match="seed"):
        store.prepare(other_seed)
    cfg = write_tiny(tmp_path / "c")
    cfg.write_text(cfg.read_text().replace("max_iter = 200", "max_iter = 50"))
    with ResultStore(path) as store, pytest.raises(StoreVersionMismatch, match="masked_gradient"):
        store.prepare(load_study(cfg))


def test_readonly_store_must_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the study first"):
        ResultStore(tmp_path / "none.sqlite", readonly=True)


def test_export_csv_is_tidy(tmp_path):
    pd = pytest.importorskip("pandas")
    cfg = write_tiny(tmp_path, reps=1, ns="[50]")
    db = tmp_path / "s.sqlite"
    assert main(["run", str(cfg), "--jobs", "1", "--store", str(db), "--quiet"]) == 0
    out = tmp_path / "out.csv"
    assert main(["export", str(cfg), "--store", str(db), "--out", str(out)]) == 0
    df = pd.read_csv(out)
    with ResultStore(db, readonly=True) as store:
        assert len(df) == store.count("results")
    for col in ("cell_id", "rep", "estimator", "metric", "label", "value", "status",
                "seed_key", "git_commit", "package_version", "n_samples"):
        assert col in df.columns
    assert not df.duplicated(["cell_id", "rep", "estimator", "metric", "label"]).any()
    assert main(["export", str(cfg), "--store", str(db), "--out", str(tmp_path / "x.txt")]) == 2
    pytest.importorskip("pyarrow")
    parquet = tmp_path / "out.parquet"
    assert main(["export", str(cfg), "--store", str(db), "--out", str(parquet)]) == 0
    back = pd.read_parquet(parquet)
    assert len(back) == len(df)
    assert back["value"].astype(float).sum() == pytest.approx(df["value"].astype(float).sum())
