"""The Dask backend with a real LocalCluster gives the same stored values as serial."""

from __future__ import annotations

import pytest
from _study_helpers import values, write_tiny

from hcl_stats.runner import run_study
from hcl_stats.store import ResultStore
from hcl_stats.study import load_study

pytest.importorskip("dask.distributed")


def test_dask_local_cluster_matches_serial(tmp_path):
    study = load_study(write_tiny(tmp_path, reps=2, ns="[50]"))
    with ResultStore(tmp_path / "serial.sqlite") as store:
        run_study(study, store, backend="serial", quiet=True)
        expected = values(store)
    with ResultStore(tmp_path / "dask.sqlite") as store:
        report = run_study(
            study, store, backend="dask", dask_local=1, dask_processes=False, quiet=True
        )
        got = values(store)
        n_units = store.count("units")
    assert report.backend == "dask"
    assert report.written_units == 2
    assert n_units == 2 * len(study.estimators)
    assert got == expected


def test_dask_scheduler_address_matches_serial(tmp_path):
    from dask.distributed import LocalCluster

    study = load_study(write_tiny(tmp_path, reps=1, ns="[50, 200]"))
    with ResultStore(tmp_path / "serial.sqlite") as store:
        run_study(study, store, backend="serial", quiet=True)
        expected = values(store)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=None) as cluster, \
            ResultStore(tmp_path / "dask.sqlite") as store:
        run_study(study, store, backend="dask", scheduler=cluster.scheduler_address, quiet=True)
        assert values(store) == expected
