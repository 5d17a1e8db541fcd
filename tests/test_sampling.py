"""Wishart (sufficient-statistic) sampling of the sample covariance."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

import hcl_stats as hs
from hcl_stats.exceptions import ValidationError
from hcl_stats.sampling import wishart_sample_cov

DIMS = (2, 3)
STRUCTURE = "AB:1 A:1"


def _model(seed: int = 0, **kwargs) -> hs.HierarchicalFactorModel:
    return hs.HierarchicalFactorModel.random(
        DIMS, STRUCTURE, noise_var=0.7, rng=seed, **kwargs
    )


def _draws(source, n, reps, rng):
    return np.stack([wishart_sample_cov(source, n, rng) for _ in range(reps)])


# n = 3 (n - 1 < d = 5, singular Wishart), n = 6 (n - 1 = d) and n = 30
@pytest.mark.parametrize("n", [3, 6, 30])
@pytest.mark.parametrize("source", ["model", "matrix", "latent"])
def test_first_two_moments(n, source, rng):
    if source == "latent":
        model = _model(latent_cov=0.4)
    else:
        model = _model()
    sigma = model.covariance()
    reps = 3000
    draws = _draws(model if source != "matrix" else sigma, n, reps, rng)
    diag = np.diag(sigma)
    var_true = (sigma**2 + np.outer(diag, diag)) / (n - 1)
    # E S = Sigma: standard error from the exact variance
    z_mean = np.abs(draws.mean(axis=0) - sigma) / np.sqrt(var_true / reps)
    assert z_mean.max() < 5.5
    # Var S_ij: standard error of the sample variance from the 4th central moment
    centred = draws - draws.mean(axis=0)
    var_hat = np.mean(centred**2, axis=0)
    se_var = np.sqrt(np.var(centred**2, axis=0) / reps)
    z_var = np.abs(var_hat - var_true) / se_var
    assert z_var.max() < 6.0


def test_detects_wrong_degrees_of_freedom(rng):
    """The moment test has power: a draw scaled as n instead of n - 1 fails it."""
    model = _model()
    sigma = model.covariance()
    n, reps = 8, 3000
    draws = _draws(model, n, reps, rng) * (n - 1) / n
    var_true = (sigma**2 + np.outer(np.diag(sigma), np.diag(sigma))) / (n - 1)
    z_mean = np.abs(draws.mean(axis=0) - sigma) / np.sqrt(var_true / reps)
    assert z_mean.max() > 5.5


def test_rank_and_symmetry(rng):
    model = _model()
    d = sum(DIMS)
    for n in (2, 3, d, d + 1, 50):
        s = wishart_sample_cov(model, n, rng)
        assert s.shape == (d, d)
        np.testing.assert_array_equal(s, s.T)
        assert np.linalg.matrix_rank(s) == min(n - 1, d)
        assert np.linalg.eigvalsh(s)[0] > -1e-12 * np.abs(s).max()


def test_model_and_matrix_paths_agree_in_distribution():
    """Low-rank factor and Cholesky factor give the same law (same A, other F)."""
    model = _model(seed=3)
    a = _draws(model, 10, 1, np.random.default_rng(5))[0]
    b = _draws(model.covariance(), 10, 1, np.random.default_rng(5))[0]
    # same Bartlett draw A; F_low A F_low^T and L A L^T differ by F = L Q, Q orthogonal,
    # so the traces of S Sigma^{-1} (= tr(A) / nu) coincide.
    inv = np.linalg.inv(model.covariance())
    assert np.trace(a @ inv) == pytest.approx(np.trace(b @ inv), rel=1e-10)


def test_reproducible():
    model = _model()
    np.testing.assert_array_equal(
        wishart_sample_cov(model, 20, rng=7), wishart_sample_cov(model, 20, rng=7)
    )


@pytest.mark.parametrize(
    ("model", "n", "match"),
    [
        (None, 10, "model must be"),
        ("ABC:1", 10, "model must be"),
        (np.eye(3), 1, "n_samples must be >= 2"),
        (np.eye(3), 2.5, "n_samples must be an integer"),
        (np.array([[1.0, 2.0], [0.0, 1.0]]), 5, "must be symmetric"),
        (np.array([[1.0, 0.0], [0.0, -1.0]]), 5, "positive semi-definite"),
    ],
)
def test_errors(model, n, match):
    with pytest.raises(ValidationError, match=match):
        wishart_sample_cov(model, n, rng=0)


@pytest.mark.parametrize(
    "estimator", [hs.estimators.NaivePCA(), hs.estimators.SchurComplement()]
)
def test_estimator_errors_agree_with_data_sampling(estimator):
    """Two-sample KS test: estimator errors under Wishart vs data sampling.

    Fixed seed set (common seeds 0..reps-1 for both samplers, independent streams),
    so the test is deterministic; the p-value threshold is loose because the
    statistic is compared, not asserted identical.
    """
    dims, n, reps = (4, 5, 6), 40, 300
    model = hs.HierarchicalFactorModel.random(dims, "ABC:1 AB:1 C:1", rng=11)

    def error(cov):
        fit = estimator.fit_covariance(
            cov, dims=dims, n_samples=n, structure=model.structure
        )
        return hs.metrics.overall_gram_error(fit, model, relative=True)

    root = np.random.SeedSequence(2026)
    wish_seeds, data_seeds = root.spawn(2)
    wish = [
        error(wishart_sample_cov(model, n, np.random.default_rng(s)))
        for s in wish_seeds.spawn(reps)
    ]
    data = [
        error(model.sample(n, rng=np.random.default_rng(s)).sample_cov())
        for s in data_seeds.spawn(reps)
    ]
    result = scipy.stats.ks_2samp(wish, data)
    assert result.pvalue > 0.01
    # and the test has power against a wrong sample size (n/2 rows of data)
    half = [
        error(model.sample(n // 2, rng=np.random.default_rng(s)).sample_cov())
        for s in data_seeds.spawn(reps)
    ]
    assert scipy.stats.ks_2samp(wish, half).pvalue < 1e-6
