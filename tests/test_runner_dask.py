"""The Dask backend with a real LocalCluster gives the same stored values as serial."""

from __future__ import annotations

import socket

import pytest
from _study_helpers import values, write_tiny

from hcl_stats.study import load_study
from hcl_stats.study.runner import _NO_DASHBOARD, run_study
from hcl_stats.study.store import ResultStore

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


@pytest.mark.parametrize("protocol", ["inproc://", "tcp://"])
def test_dask_scheduler_address_matches_serial(tmp_path, protocol):
    # tcp: the --scheduler path of real use (distributed checks the TCP time-outs
    # set by the runner on every stream; a too-low one refused every scheduler)
    from dask.distributed import LocalCluster

    study = load_study(write_tiny(tmp_path, reps=1, ns="[50, 200]"))
    with ResultStore(tmp_path / "serial.sqlite") as store:
        run_study(study, store, backend="serial", quiet=True)
        expected = values(store)
    # one thread: BLAS thread limits are process-wide, so two units running in
    # two threads of one worker can change each other's last bits
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol=protocol,
                      **_NO_DASHBOARD) as cluster, \
            ResultStore(tmp_path / "dask.sqlite") as store:
        assert cluster.scheduler_address.startswith(protocol)
        run_study(study, store, backend="dask", scheduler=cluster.scheduler_address, quiet=True)
        assert values(store) == expected


@pytest.fixture
def port_8787_taken():
    """Hold TCP port 8787 (Dask's default dashboard port) on all interfaces."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("0.0.0.0", 8787))
        sock.listen(1)
    except OSError:
        pass  # someone else holds it already, which is the situation under test
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(OSError, match="in use"):
            probe.bind(("127.0.0.1", 8787))
    finally:
        probe.close()
    yield
    sock.close()


def test_dask_local_cluster_ignores_a_busy_dashboard_port(tmp_path, port_8787_taken):
    # distributed warns "Port 8787 is already in use" when it falls back to
    # another port; with filterwarnings=error that warning fails this test
    study = load_study(write_tiny(tmp_path, reps=1, ns="[50]"))
    with ResultStore(tmp_path / "serial.sqlite") as store:
        run_study(study, store, backend="serial", quiet=True)
        expected = values(store)
    with ResultStore(tmp_path / "dask.sqlite") as store:
        report = run_study(
            study, store, backend="dask", dask_local=1, dask_processes=False, quiet=True
        )
        assert report.written_units == 1
        assert values(store) == expected
