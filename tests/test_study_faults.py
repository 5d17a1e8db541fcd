"""Faults injected into Monte Carlo studies (issue 9, parts 3 and 4).

* repeated SIGKILL of ``hcl-stats run`` at random points, then resume: exact row
  counts, no duplicates, values identical to an uninterrupted run;
* an estimator that raises, one that hangs past ``--timeout`` and one that does
  not converge: recorded as failed with their error, the study goes on;
* a corrupted or truncated store: StoreCorruptedError, the file is left untouched;
* two ``run`` processes on the same store at once: no duplicated or lost rows;
* a Dask worker killed mid-study: its task is retried, the store is consistent.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from _study_helpers import count_units, values, write_tiny

from hcl_stats import estimators
from hcl_stats.estimators import SchurComplement
from hcl_stats.exceptions import StoreCorruptedError
from hcl_stats.study import load_study
from hcl_stats.study.runner import run_study
from hcl_stats.study.store import ResultStore

_CODE = "import sys; from hcl_stats.cli import main; sys.exit(main(sys.argv[1:]))"


# ----------------------------------------------------------- faulty estimators
@dataclass(frozen=True, kw_only=True)
class _Boom(SchurComplement):
    """Raises on odd replicates' data (decided from the data, so deterministic)."""

    name: ClassVar[str] = "_fault_boom"

    def _fit(self, problem, rng):
        if problem.cov[0, 0] > np.median(np.diag(problem.cov)):
            raise RuntimeError("injected fault: boom")
        return super()._fit(problem, rng)


@dataclass(frozen=True, kw_only=True)
class _Hang(SchurComplement):
    """Sleeps far past any timeout."""

    name: ClassVar[str] = "_fault_hang"

    def _fit(self, problem, rng):
        time.sleep(60)
        return super()._fit(problem, rng)


for _cls in (_Boom, _Hang):
    estimators.register(_cls)


def _integrity(store) -> tuple[int, int, int]:
    """(units, results, duplicated result keys)."""
    dup = store.query(
        "SELECT COUNT(*) FROM (SELECT 1 FROM results GROUP BY cell_id, rep, estimator, "
        "metric, label HAVING COUNT(*) > 1)"
    )[0][0]
    return store.count("units"), store.count("results"), dup


def _no_nan_ok_values(store) -> int:
    """Number of NULL/NaN values stored for units recorded as ok (must be 0)."""
    return store.query(
        "SELECT COUNT(*) FROM results r JOIN units u USING (cell_id, rep, estimator) "
        "WHERE u.status = 'ok' AND r.value IS NULL"
    )[0][0]


@pytest.fixture(scope="module")
def tiny_clean(tmp_path_factory):
    """An uninterrupted serial run of the tiny study (the reference)."""
    tmp = tmp_path_factory.mktemp("clean")
    cfg = write_tiny(tmp, reps=4, ns="[60, 120]")
    study = load_study(cfg)
    with ResultStore(tmp / "clean.sqlite") as store:
        run_study(study, store, backend="serial", quiet=True)
        return cfg, study, values(store), _integrity(store)


# ------------------------------------------------------------- failures recorded
def test_raising_hanging_and_nonconverged_fits_are_failures_not_numbers(tmp_path):
    extra = """
[estimators.boom]
name = "_fault_boom"
[estimators.hang]
name = "_fault_hang"
[estimators.stalled]
name = "masked_gradient"
max_iter = 1
tol = 1e-14
"""
    cfg = write_tiny(tmp_path, reps=2, ns="[60]", extra=extra)
    study = load_study(cfg)
    start = time.monotonic()
    with ResultStore(tmp_path / "s.sqlite") as store:
        report = run_study(study, store, backend="serial", quiet=True, timeout=0.5)
        elapsed = time.monotonic() - start
        rows = {
            (rep, est): (status, error)
            for rep, est, status, error in store.query(
                "SELECT rep, estimator, status, error FROM units")
        }
        n_units, n_results, dup = _integrity(store)
        failed_values = store.query(
            "SELECT COUNT(*) FROM results r JOIN units u USING (cell_id, rep, estimator) "
            "WHERE u.status = 'failed'")[0][0]
        assert _no_nan_ok_values(store) == 0
    n_labels = len(study.estimators)
    assert n_units == 2 * n_labels
    assert dup == 0
    assert report.written_units == 2
    # the hang was cut at the timeout instead of blocking for 60 s per replicate
    assert elapsed < 30
    for rep in (0, 1):
        status, error = rows[(rep, "hang")]
        assert status == "failed"
        assert error.startswith("UnitTimeout: fit of 'hang' exceeded the per-replicate timeout of 0.5 s")
        status, error = rows[(rep, "stalled")]
        assert status == "failed"
        assert error.startswith("NotConverged: solver stopped after 1 iterations")
        assert "ConvergenceWarning" in error
        # the healthy estimators of the same replicate are unaffected
        for label in ("naive", "schur", "schur_per_view", "masked_gradient"):
            assert rows[(rep, label)][0] == "ok", rows[(rep, label)]
    booms = [rows[(rep, "boom")] for rep in (0, 1)]
    assert all(s == "ok" or e == "RuntimeError: injected fault: boom" for s, e in booms)
    assert any(s == "failed" for s, _ in booms)  # the fault really fired (replicate 1)
    assert failed_values == 0  # a failure stores no number
    # a retry recomputes exactly the failed units and keeps the others
    with ResultStore(tmp_path / "s.sqlite") as store:
        again = run_study(study, store, backend="serial", quiet=True, timeout=0.5,
                          retry_failed=True)
        assert again.skipped_units == sum(s == "ok" for s, _ in rows.values())
        assert _integrity(store)[0] == n_units


def test_timeout_must_be_positive(tmp_path):
    from hcl_stats.exceptions import ValidationError

    study = load_study(write_tiny(tmp_path, reps=1, ns="[60]"))
    with ResultStore(tmp_path / "s.sqlite") as store, pytest.raises(
            ValidationError, match=r"timeout must be > 0 seconds; got 0"):
        run_study(study, store, backend="serial", quiet=True, timeout=0)


# ------------------------------------------------------------- corrupted stores
def _garble(path: Path, how: str) -> bytes:
    raw = path.read_bytes()
    if how == "truncated":
        path.write_bytes(raw[: len(raw) // 3])
    elif how == "header":
        path.write_bytes(b"\x00" * 100 + raw[100:])
    elif how == "garbage":
        path.write_bytes(os.urandom(len(raw)))
    elif how == "text":
        path.write_text("this is not a database\n" * 50)
    return path.read_bytes()


@pytest.mark.parametrize("how", ["truncated", "header", "garbage", "text"])
def test_corrupted_store_is_detected_and_not_overwritten(tiny_clean, tmp_path, how):
    cfg, study, _, _ = tiny_clean
    db = tmp_path / "s.sqlite"
    with ResultStore(db) as store:
        run_study(study, store, backend="serial", quiet=True, reps=1)
    with sqlite3.connect(db) as con:  # fold the WAL into the file before damaging it
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for side in (db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        side.unlink(missing_ok=True)
    damaged = _garble(db, how)
    with pytest.raises(StoreCorruptedError, match=r"s\.sqlite"):
        with ResultStore(db) as store:
            run_study(study, store, backend="serial", quiet=True)
    assert db.read_bytes() == damaged  # nothing was silently rewritten
    if how != "truncated":
        return
    # the CLI says so in one line and exits non-zero (one case: a subprocess is slow)
    proc = subprocess.run(
        [sys.executable, "-c", _CODE, "run", str(cfg), "--jobs", "1", "--quiet",
         "--store", str(db)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "StoreCorruptedError" in proc.stderr, proc.stderr
    assert db.read_bytes() == damaged


# ------------------------------------------------------------- kills and races


def _start(cfg: Path, db: Path, jobs: int = 1) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _CODE, "run", str(cfg), "--jobs", str(jobs), "--quiet",
         "--store", str(db)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_repeated_sigkill_at_random_points_then_resume(tiny_clean, tmp_path):
    cfg, study, clean, clean_counts = tiny_clean
    n_labels = len(study.estimators)
    total = clean_counts[0]
    db = tmp_path / "killed.sqlite"
    gen = np.random.default_rng(2026)
    kills = 0
    for round_ in range(4):
        proc = _start(cfg, db, jobs=1 if round_ % 2 == 0 else 2)
        before = count_units(db)
        # kill at a random point: after a random number of newly written units, or
        # after a random delay (which may land during start-up or mid-transaction)
        target = before + n_labels * int(gen.integers(1, 3))
        delay = float(gen.uniform(0.2, 3.0))
        t0 = time.monotonic()
        while proc.poll() is None and count_units(db) < target and time.monotonic() - t0 < 60:
            if round_ == 3 and time.monotonic() - t0 > delay:
                break
            time.sleep(0.01)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        proc.stderr.close()
        partial = count_units(db)
        assert partial % n_labels == 0  # whole (cell, rep) units only
        assert partial <= total
    assert kills >= 3
    with ResultStore(db) as store:
        run_study(study, store, backend="serial", quiet=True)
        assert _integrity(store) == clean_counts
        assert values(store) == clean
        assert _no_nan_ok_values(store) == 0


@pytest.mark.slow
def test_two_concurrent_runs_neither_duplicate_nor_lose_rows(tiny_clean, tmp_path):
    cfg, study, clean, clean_counts = tiny_clean
    db = tmp_path / "shared.sqlite"
    procs = [_start(cfg, db), _start(cfg, db)]
    errors = []
    for p in procs:
        p.wait(timeout=300)
        errors.append(p.stderr.read().decode())
        p.stderr.close()
    assert [p.returncode for p in procs] == [0, 0], errors
    with ResultStore(db) as store:
        assert _integrity(store) == clean_counts
        assert values(store) == clean
        runs = store.query("SELECT units FROM runs")
    # together the two runs wrote every unit; none is counted twice in the store
    assert len(runs) == 2


# ------------------------------------------------------------- Dask worker death
_PRELOAD = '''
import os
from pathlib import Path
from dataclasses import dataclass
from typing import ClassVar
from hcl_stats import estimators
from hcl_stats.estimators import SchurComplement

MARK = Path({mark!r})

@dataclass(frozen=True, kw_only=True)
class _KillOnce(SchurComplement):
    """Kills its worker process the first time it runs; fits normally afterwards."""
    name: ClassVar[str] = "_fault_kill_worker_once"
    def _fit(self, problem, rng):
        try:
            fd = os.open(MARK, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return super()._fit(problem, rng)
        os.close(fd)
        os._exit(1)

estimators.register(_KillOnce)
'''


@pytest.mark.slow
def test_dask_worker_killed_mid_study_is_retried(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    mark = tmp_path / "killed.mark"
    preload = tmp_path / "hcl_fault_preload.py"
    preload.write_text(_PRELOAD.format(mark=str(mark)))
    sys.path.insert(0, str(tmp_path))
    try:
        import hcl_fault_preload  # noqa: F401  (registers the estimator here too)

        extra = '[estimators.killer]\nname = "_fault_kill_worker_once"\n'
        cfg = write_tiny(tmp_path, reps=2, ns="[60]", extra=extra)
        study = load_study(cfg)
        with distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0",
            preload=[str(preload)], silence_logs=50, scheduler_kwargs={"dashboard": False},
        ) as cluster, ResultStore(tmp_path / "d.sqlite") as store:
            report = run_study(study, store, backend="dask", scheduler=cluster.scheduler_address,
                               quiet=True)
            assert mark.exists()  # a worker really died
            n_units, n_results, dup = _integrity(store)
            assert n_units == 2 * len(study.estimators)
            assert dup == 0
            assert report.failed_units == 0
            assert _no_nan_ok_values(store) == 0
        with ResultStore(tmp_path / "serial.sqlite") as ref:
            run_study(study, ref, backend="serial", quiet=True)
            with ResultStore(tmp_path / "d.sqlite") as store:
                assert values(store) == values(ref)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("hcl_fault_preload", None)


def test_inaccurate_solver_status_is_a_failure_text():
    # what the runner records for any estimator whose diagnostics say converged=False
    # (MaskedGradient at max_iter, a cvxpy 'optimal_inaccurate' status, SLIDE, ...)
    from hcl_stats.results import Diagnostics
    from hcl_stats.study.compute import _not_converged

    @dataclass(frozen=True)
    class _Fit:
        diagnostics: Diagnostics

    bad = _Fit(Diagnostics(converged=False, n_iter=7, relative_gradient=0.5, warnings=(
        "ConvergenceWarning: solver status 'optimal_inaccurate'",)))
    text = _not_converged(bad)
    assert text.startswith("NotConverged: solver stopped after 7 iterations, relative gradient 0.5")
    assert "optimal_inaccurate" in text
    assert _not_converged(_Fit(Diagnostics(converged=True))) is None
    assert _not_converged(_Fit(Diagnostics(converged=None))) is None  # closed forms
