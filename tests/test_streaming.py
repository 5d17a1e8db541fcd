"""Chunked covariance: equals the two-pass sample covariance for any chunking."""

from __future__ import annotations

import numpy as np
import pytest

import hcl_stats as hs
from hcl_stats.exceptions import ValidationError
from hcl_stats.streaming import streaming_cov


@pytest.mark.parametrize("chunk_rows", [1, 7, 64, 1000])
def test_matches_two_pass(chunk_rows, rng):
    x = rng.standard_normal((137, 6)) * rng.uniform(0.1, 10, 6) + rng.uniform(-1e4, 1e4, 6)
    cov, n = streaming_cov(x, chunk_rows=chunk_rows)
    assert n == 137
    ref = np.cov(x, rowvar=False)
    np.testing.assert_allclose(cov, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())
    np.testing.assert_array_equal(cov, cov.T)
    cov0, _ = streaming_cov(x, chunk_rows=chunk_rows, ddof=0)
    np.testing.assert_allclose(cov0, ref * 136 / 137, rtol=1e-9, atol=1e-9 * np.abs(ref).max())


def test_views_memmap_and_path_agree(tmp_path, rng):
    model = hs.HierarchicalFactorModel.random((3, 4, 5), "ABC:1 A:1", rng=rng)
    data = model.sample(300, rng=rng)
    ref = data.sample_cov()
    by_views, _ = streaming_cov(data.Xs, chunk_rows=50)
    path = tmp_path / "x.npy"
    np.save(path, data.stacked)
    by_path, n = streaming_cov(path, chunk_rows=64)
    by_memmap, _ = streaming_cov(np.load(path, mmap_mode="r"), chunk_rows=1000)
    assert n == 300
    for cov in (by_views, by_path, by_memmap):
        np.testing.assert_allclose(cov, ref, rtol=1e-10, atol=1e-12)


def test_fit_from_data_equals_fit_from_covariance(rng):
    model = hs.HierarchicalFactorModel.random((4, 5, 6), "ABC:1 AB:1 C:1", rng=rng)
    data = model.sample(500, rng=rng)
    est = hs.estimators.SchurComplement()
    a = est.fit(data, structure=model.structure)
    b = est.fit_covariance(data.sample_cov(), dims=data.dims, n_samples=500, structure=model.structure)
    np.testing.assert_allclose(
        a.loadings @ a.loadings.T, b.loadings @ b.loadings.T, rtol=1e-8, atol=1e-10
    )


@pytest.mark.parametrize(
    ("source", "kwargs", "match"),
    [
        (np.ones(5), {}, "must be 2-D"),
        ([np.ones((5, 2)), np.ones((4, 2))], {}, "same number of rows"),
        (np.array([[1.0, np.nan], [0.0, 1.0], [1.0, 2.0]]), {}, "finite"),
        (np.ones((3, 2)), {"ddof": 3}, "n_samples - ddof must be >= 1"),
        (np.ones((3, 2)), {"chunk_rows": 0}, "chunk_rows must be >= 1"),
        (np.array([["a", "b"]]), {}, "numeric dtype"),
        ("/nonexistent/file.npy", {}, "readable .npy"),
        (42, {}, "source must be"),
    ],
)
def test_errors(source, kwargs, match):
    with pytest.raises(ValidationError, match=match):
        streaming_cov(source, **kwargs)
