"""Limits beside every error and asymptotic error predictions (docs/theory.md §8-§9)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import hcl_stats as hs
from hcl_stats import theory
from hcl_stats.exceptions import ValidationError
from hcl_stats.metrics import overall_gram_error
from hcl_stats.sampling import wishart_sample_cov
from hcl_stats.theory.limits import ls_oracle_risk, row_specs
from hcl_stats.theory.predict import (
    _t_matrix,
    fisher_information,
    masked_parameters,
    param_covariances,
    spiked_overall_risk,
)


def _row_factor(model, row, w):
    cols = np.unique(np.concatenate(row.columns))
    parts = []
    for m, c in zip(row.views, row.columns, strict=True):
        b = np.zeros((model.dims[m], cols.size))
        b[:, np.searchsorted(cols, c)] = w[model.row_slice(m)][:, c]
        parts.append(b)
    return np.vstack(parts)


def _oracle_mc(model, n, reps, gen):
    """Squared Gram errors of the known-latent least-squares oracle, per row."""
    w = np.asarray(model.loadings)
    mask = model.structure.mask(model.dims)
    rows = row_specs(model)
    root = np.sqrt(model.noise_diagonal())
    out = np.empty((reps, len(rows)))
    for i in range(reps):
        z = gen.standard_normal((n, w.shape[1]))
        x = z @ w.T + gen.standard_normal((n, w.shape[0])) * root
        w_hat = np.linalg.solve(z.T @ z, z.T @ x).T * mask
        for j, row in enumerate(rows):
            fe, ft = _row_factor(model, row, w_hat), _row_factor(model, row, w)
            out[i, j] = np.linalg.norm(fe @ fe.T - ft @ ft.T) ** 2
    return out


def test_limits_layout_and_population_values():
    model = hs.HierarchicalFactorModel.random((5, 6, 7), "ABC:1 AB:2 C:1", rng=3)
    tab = theory.limits(model, 500)
    assert list(tab["view"]) == ["A", "B", "C", "A", "B", "C", "", "", "", ""]
    assert list(tab["block"]) == ["ABC"] * 3 + ["AB"] * 2 + ["C", "ABC", "AB", "C", "overall"]
    # zero_error is ||G||_F of the row's Gram
    g = model.signal_covariance()
    assert tab["zero_error"].iloc[-1] == pytest.approx(np.linalg.norm(g))
    assert tab["zero_error"].iloc[6] == pytest.approx(np.linalg.norm(model.gram("ABC")))
    assert tab["zero_error"].iloc[3] == pytest.approx(
        np.linalg.norm(model.block(0, "AB") @ model.block(0, "AB").T)
    )
    # the CRB is the first-order part of the oracle's risk; both shrink like 1/n
    assert (tab["oracle_crb"] < tab["oracle_floor"]).all()
    big = theory.limits(model, 500_000)
    ratio = (big["oracle_floor"] / tab["oracle_floor"]).to_numpy()
    assert np.all(ratio < 1.05 * math.sqrt(500 / 500_000))
    assert np.allclose(big["oracle_floor"] / big["oracle_crb"], 1.0, atol=2e-3)
    assert tab["spectral_limit"].iloc[:-1].isna().all()
    assert 0 < tab["spectral_limit"].iloc[-1] < tab["zero_error"].iloc[-1]


def test_ls_oracle_risk_is_exact(global_seed):
    """Proposition L1: the closed form equals the oracle's Monte Carlo risk."""
    gen = np.random.default_rng(global_seed)
    model = hs.HierarchicalFactorModel.random(
        (4, 6, 9), "ABC:1 AB:1 BC:2 A:1", noise_var=[0.5, 1.0, 2.0], rng=global_seed
    )
    n, reps = 25, 700
    err2 = _oracle_mc(model, n, reps, gen)
    for j, row in enumerate(row_specs(model)):
        risk, crb = ls_oracle_risk(model, row, n)
        se = err2[:, j].std(ddof=1) / math.sqrt(reps)
        assert abs(err2[:, j].mean() - risk) < 4.5 * se, (row.block, row.view)


def test_ls_oracle_risk_needs_gaussian_latents(global_seed):
    """The other side of Proposition L1's Gaussian assumption.

    The proof averages over Z with the inverse-Wishart moments (E V = I / q).
    Latents with the same covariance but multivariate-t rows (4 degrees of
    freedom, scaled to unit variance) make Z^T Z more variable, and the oracle's
    risk on the same design exceeds the closed form by about 50% (1.48-1.53 over
    four seeds at n = 25).
    """
    gen = np.random.default_rng(global_seed)
    model = hs.HierarchicalFactorModel.random(
        (4, 6, 9), "ABC:1 AB:1 BC:2 A:1", noise_var=[0.5, 1.0, 2.0], rng=global_seed
    )
    n, reps, nu = 25, 400, 4.0
    w = np.asarray(model.loadings)
    mask = model.structure.mask(model.dims)
    row = row_specs(model)[-1]
    root = np.sqrt(model.noise_diagonal())
    err2 = np.empty(reps)
    for i in range(reps):
        z = gen.standard_normal((n, w.shape[1]))
        z *= np.sqrt((nu - 2) / gen.chisquare(nu, size=(n, 1)))
        x = z @ w.T + gen.standard_normal((n, w.shape[0])) * root
        w_hat = np.linalg.solve(z.T @ z, z.T @ x).T * mask
        fe, ft = _row_factor(model, row, w_hat), _row_factor(model, row, w)
        err2[i] = np.linalg.norm(fe @ fe.T - ft @ ft.T) ** 2
    risk, _ = ls_oracle_risk(model, row, n)
    assert err2.mean() > 1.2 * risk


def test_crb_alone_misses_the_oracle_risk_when_d_over_n_is_not_small(global_seed):
    """The other side: at d_m / n ~ 1 the first-order CRB is far below the risk."""
    gen = np.random.default_rng(global_seed)
    model = hs.HierarchicalFactorModel.random((30,), "A:2", noise_var=1.0, rng=global_seed)
    n, reps = 30, 300
    err2 = _oracle_mc(model, n, reps, gen)[:, -1]
    risk, crb = ls_oracle_risk(model, row_specs(model)[-1], n)
    se = err2.std(ddof=1) / math.sqrt(reps)
    assert abs(err2.mean() - risk) < 4.5 * se
    assert err2.mean() - crb > 10 * se


def test_detectability_flags_flip_at_the_edge():
    # one view, one block with singular values (1, 0.5): spikes 1 and 0.25
    d, n, s2 = 40, 1000, 1.0
    w = np.zeros((d, 2))
    w[0, 0], w[1, 1] = 1.0, 0.5
    model = hs.HierarchicalFactorModel((d,), hs.Structure.parse("A:2"), w, s2)
    tab = theory.limits(model, n)
    assert tab["spike_min"].iloc[-1] == pytest.approx(0.25)
    assert tab["edge_global"].iloc[-1] == pytest.approx(s2 * math.sqrt(d / n))
    assert tab["spikes"].iloc[-1] == "1 0.25"
    # edge sqrt(40/1000) = 0.2 < 0.25: detectable; at n = 500 the edge is 0.283 > 0.25
    assert bool(tab["detectable_global"].iloc[-1])
    assert not bool(theory.limits(model, 500)["detectable_global"].iloc[-1])


def test_restricted_edge_uses_the_rows_own_dimension():
    model = hs.HierarchicalFactorModel.random((10, 200), "AB:1 A:1 B:1", noise_var=1.0, rng=0)
    tab = theory.limits(model, 400).set_index(["view", "block"])
    a = tab.loc[("A", "A")]
    assert a["p"] == 10
    assert a["edge_restricted"] == pytest.approx(math.sqrt(10 / 400))
    assert a["edge_global"] == pytest.approx(math.sqrt(210 / 400))


def test_fisher_information_matches_finite_differences():
    model = hs.HierarchicalFactorModel.random((3, 4), "AB:1 A:1", noise_var=0.7, rng=2)
    n = 50
    fisher = fisher_information(model, n)
    rows, cols = masked_parameters(model)
    w0 = np.asarray(model.loadings)
    s0 = model.covariance()

    def sigma(theta):
        w = np.zeros_like(w0)
        w[rows, cols] = theta[:-1]
        return w @ w.T + theta[-1] * np.eye(w0.shape[0])

    def expected_loglik(theta):
        cov = sigma(theta)
        sign, logdet = np.linalg.slogdet(cov)
        return -(n - 1) / 2 * (logdet + np.trace(np.linalg.solve(cov, s0)))

    theta0 = np.append(w0[rows, cols], 0.7)
    p, h = theta0.size, 1e-4
    hess = np.empty((p, p))
    eye = np.eye(p) * h
    for i in range(p):
        for j in range(p):
            hess[i, j] = (
                expected_loglik(theta0 + eye[i] + eye[j])
                - expected_loglik(theta0 + eye[i] - eye[j])
                - expected_loglik(theta0 - eye[i] + eye[j])
                + expected_loglik(theta0 - eye[i] - eye[j])
            ) / (4 * h * h)
    np.testing.assert_allclose(fisher, -hess, rtol=1e-5, atol=1e-5 * np.abs(fisher).max())


def test_fisher_information_is_singular_exactly_along_rotations():
    model = hs.HierarchicalFactorModel.random((4, 5, 6), "ABC:2 AB:1 C:3", rng=5)
    fisher = fisher_information(model, 100)
    rows, cols = masked_parameters(model)
    w = np.asarray(model.loadings)
    null = sum(r * (r - 1) // 2 for r in model.structure.ranks)
    vals = np.linalg.eigvalsh(fisher)
    assert np.all(vals[:null] < 1e-9 * vals[-1])
    assert vals[null] > 1e-6 * vals[-1]
    # a rotation direction of block C: dW^C = W^C A with A skew
    st = model.structure
    cols_c = st.columns(frozenset({2}))
    skew = np.array([[0, 1, 2], [-1, 0, 3], [-2, -3, 0]], dtype=float)
    dw = np.zeros_like(w)
    dw[:, cols_c] = w[:, cols_c] @ skew
    direction = np.append(dw[rows, cols], 0.0)
    assert np.linalg.norm(fisher @ direction) < 1e-9 * np.linalg.norm(fisher)


def test_masked_gradient_linearisation_matches_the_estimator(global_seed):
    """The sandwich's linear map dW = T(I)^+ (E W)_mask reproduces the fit's response."""
    gen = np.random.default_rng(global_seed)
    model = hs.HierarchicalFactorModel.random((6, 7, 8), "all:1", noise_var=1.0, rng=global_seed)
    w = np.asarray(model.loadings)
    rows, cols = masked_parameters(model)
    t_i = _t_matrix(np.eye(w.shape[0]), w, rows, cols)
    null = 0
    vals, vecs = np.linalg.eigh(t_i)
    pinv = (vecs[:, null:] / vals[null:]) @ vecs[:, null:].T
    a = gen.standard_normal(model.covariance().shape)
    e = 1e-5 * (a + a.T)
    est = hs.estimators.MaskedGradient(noise_rule=1.0, tol=1e-12, max_iter=20000)
    fit = est.fit_covariance(model.covariance() + e, dims=model.dims, structure=model.structure)
    dw = np.zeros_like(w)
    dw[rows, cols] = pinv @ (e @ w)[rows, cols]
    predicted = dw @ w.T + w @ dw.T
    actual = fit.loadings @ fit.loadings.T - w @ w.T
    assert np.linalg.norm(actual - predicted) < 1e-2 * np.linalg.norm(predicted)


def _spectral_mc(model, n, reps, gen):
    ests = {"naive": hs.estimators.NaivePCA(), "pca_shrink": hs.estimators.PCAShrink()}
    out = {k: np.empty(reps) for k in ests}
    for i in range(reps):
        cov = wishart_sample_cov(model, n, gen)
        for k, e in ests.items():
            fit = e.fit_covariance(cov, dims=model.dims, n_samples=n, structure=model.structure)
            out[k][i] = overall_gram_error(fit, model)
    return out


def test_spiked_prediction_matches_monte_carlo_where_valid(global_seed):
    gen = np.random.default_rng(global_seed)
    model = hs.HierarchicalFactorModel.random((12, 12, 12), "all:1", noise_var=1.0, rng=7)
    n, reps = 6000, 30
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mc = _spectral_mc(model, n, reps, gen)
    for name, err in mc.items():
        tab = theory.predicted_error(model, n, name)
        assert bool(tab["valid"].iloc[-1])
        se = err.std(ddof=1) / math.sqrt(reps)
        pred = tab["predicted_error"].iloc[-1]
        assert abs(err.mean() - pred) < 0.03 * pred + 4 * se, name


def test_spiked_prediction_is_flagged_below_the_detection_edge():
    model = hs.HierarchicalFactorModel.random((20, 20, 20), "all:1", noise_var=1.0, rng=7)
    small = float(np.linalg.svd(model.loadings, compute_uv=False)[-1] ** 2)
    # choose n with the smallest spike below the BBP threshold sqrt((D - K) / n)
    n = int(0.8 * (60 - 7) / small**2)
    for name in ("naive", "pca_shrink"):
        tab = theory.predicted_error(model, n, name)
        assert not bool(tab["valid"].iloc[-1])
        assert "1 undetectable" in tab["note"].iloc[-1] or "undetectable" in tab["note"].iloc[-1]


def test_spectral_limit_is_the_optimal_equivariant_risk():
    """eta = ell c^2 minimises the limiting risk over all weights (DGJ 2018)."""
    spikes = np.array([3.0, 1.0, 0.4])
    for gamma_n in (200, 2000, 20000):
        opt = spiked_overall_risk(spikes, 1.0, gamma_n, 100, "oracle_shrink")["bias"]
        naive = spiked_overall_risk(spikes, 1.0, gamma_n, 100, "naive")["bias"]
        shrink = spiked_overall_risk(spikes, 1.0, gamma_n, 100, "pca_shrink")["bias"]
        assert opt <= naive + 1e-12
        assert opt <= shrink + 1e-12


def test_masked_prediction_orders_crb_below_prediction_and_flags_small_n():
    model = hs.HierarchicalFactorModel.random((10, 10, 10), "all:1", noise_var=1.0, rng=1)
    big = theory.predicted_error(model, 20_000, "masked_gradient")
    assert big["valid"].all()
    assert (big["crb"] ** 2 <= big["predicted_mse"] * (1 + 1e-9)).all()
    small = theory.predicted_error(model, 40, "masked_gradient")
    assert not small["valid"].all()
    masked, crb = param_covariances(model, 20_000)
    # Cramer-Rao: the masked fit's covariance dominates the CRB on identified directions
    diff_vals = np.linalg.eigvalsh(masked - crb)
    assert diff_vals.min() > -1e-9 * np.abs(diff_vals).max()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m: theory.limits(m, 5), "n_samples"),
        (lambda m: theory.predicted_error(m, 500, "schur"), "estimator"),
        (lambda m: theory.limits("model", 500), "HierarchicalFactorModel"),
    ],
)
def test_bad_input(call, match):
    model = hs.HierarchicalFactorModel.random((5, 5), "AB:1 A:1 B:1", rng=0)
    with pytest.raises(ValidationError, match=match):
        call(model)


def test_correlated_latents_and_heteroscedastic_spectral_are_refused():
    model = hs.HierarchicalFactorModel.random((5, 5), "AB:1 A:1 B:1", latent_cov=0.3, rng=0)
    with pytest.raises(ValidationError, match="latent_cov"):
        theory.limits(model, 100)
    het = hs.HierarchicalFactorModel.random((5, 5), "AB:1 A:1 B:1", noise_var=[1, 2], rng=0)
    with pytest.raises(ValidationError, match="isotropic"):
        theory.predicted_error(het, 100, "naive")
