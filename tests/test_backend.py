"""``run_study`` takes one Backend value; the older loose keywords still work."""

from __future__ import annotations

import pytest
from _study_helpers import values, write_tiny

from hcl_stats.exceptions import ValidationError
from hcl_stats.study import load_study
from hcl_stats.study.runner import Backend, run_study
from hcl_stats.study.store import ResultStore


def test_backend_resolves_and_checks():
    assert Backend("process", jobs=1).resolved().kind == "serial"
    assert Backend("process", jobs=3).resolved().workers == 3
    assert Backend("dask", dask_local=2).resolved().workers == 2
    with pytest.raises(ValidationError, match="backend must be 'serial', 'process' or 'dask'"):
        Backend("threads").resolved()
    with pytest.raises(ValidationError, match=r"dask_local \(--dask-local\) must be an integer >= 1"):
        Backend("dask", dask_local=0).resolved()


def test_backend_value_and_loose_keywords_store_identical_values(tmp_path):
    pytest.importorskip("pandas")
    study = load_study(write_tiny(tmp_path, reps=2, ns="[60]"))
    out = {}
    for name, kwargs in {"value": {"backend": Backend("serial")},
                         "keywords": {"backend": "process", "jobs": 1}}.items():
        with ResultStore(tmp_path / f"{name}.sqlite") as store:
            report = run_study(study, store, quiet=True, **kwargs)
            assert report.backend == "serial"
            out[name] = values(store)
    assert out["value"]
    assert out["value"] == out["keywords"]


def test_backend_value_refuses_loose_keywords_too(tmp_path):
    study = load_study(write_tiny(tmp_path, reps=1, ns="[60]"))
    with ResultStore(tmp_path / "s.sqlite") as store, pytest.raises(
        ValidationError, match="give the backend's options in the Backend value"
    ):
        run_study(study, store, backend=Backend("serial"), jobs=2)
