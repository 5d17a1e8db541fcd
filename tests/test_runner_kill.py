"""SIGKILL a running ``hcl-stats run`` mid-way, resume, and compare with a clean run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from _study_helpers import count_units, values, write_tiny

from hcl_stats.study import load_study
from hcl_stats.study.runner import run_study
from hcl_stats.study.store import ResultStore

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")




def test_sigkill_then_resume_loses_and_duplicates_nothing(tmp_path):
    cfg = write_tiny(tmp_path, reps=8, ns="[400, 800]")
    study = load_study(cfg)
    total_units = len(study.cells) * study.replications * len(study.estimators)
    db = tmp_path / "killed.sqlite"
    code = "import sys; from hcl_stats.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "run", str(cfg), "--jobs", "1", "--quiet", "--store", str(db)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    try:
        while count_units(db) < 2 * len(study.estimators) and proc.poll() is None:
            if time.monotonic() > deadline:
                pytest.fail("the run wrote nothing within 120 s")
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    proc.stderr.close()
    partial = count_units(db)
    assert 0 < partial < total_units, "kill landed before the first or after the last write"
    assert partial % len(study.estimators) == 0  # units are written per (cell, rep)

    with ResultStore(db) as store:
        report = run_study(study, store, backend="serial", quiet=True)
        assert report.skipped_units == partial
        resumed = values(store)
        n_rows = store.count("results")
        dup = store.query(
            "SELECT COUNT(*) FROM (SELECT 1 FROM results GROUP BY cell_id, rep, estimator, "
            "metric, label HAVING COUNT(*) > 1)"
        )[0][0]
        assert store.count("units") == total_units
        assert dup == 0
    with ResultStore(tmp_path / "clean.sqlite") as store:
        run_study(study, store, backend="serial", quiet=True)
        clean = values(store)
        assert store.count("results") == n_rows
    assert resumed == clean
