"""Bound formulas against hand computations and sampling; fit_rate on known slopes."""

from __future__ import annotations

import math

import numpy as np
import pytest

import hcl_stats as hs
from hcl_stats import theory
from hcl_stats.exceptions import ValidationError

pd = pytest.importorskip("pandas")
pytest.importorskip("statsmodels")


def _one_factor_model():
    # W = [2, 0]^T, sigma^2 = 1: Sigma = diag(5, 1), K = 1, kappa = 1, gap = 4.
    s = hs.Structure.parse("AB:1")
    return hs.HierarchicalFactorModel((1, 1), s, [[2.0], [0.0]], noise_var=1.0)


# ---------------------------------------------------------------- population
def test_population_quantities_hand_values():
    q = theory.population_quantities(_one_factor_model())
    assert q.d == 2
    assert q.total_rank == 1
    assert q.n_structures == 1
    assert q.cov_norm == pytest.approx(5.0)
    assert q.loading_norm == pytest.approx(2.0)
    assert q.signal_min == pytest.approx(2.0)
    assert q.condition_number == pytest.approx(1.0)
    assert q.eigengap == pytest.approx(4.0)
    assert q.effective_rank == pytest.approx(6.0 / 5.0)
    assert q.block_singular_values[frozenset({0, 1})] == pytest.approx((2.0, 2.0))
    assert q.view_block_singular_values[(1, frozenset({0, 1}))] == pytest.approx((0.0, 0.0))


def test_population_quantities_identities(global_seed):
    model = hs.HierarchicalFactorModel.random(
        (5, 6, 7), "all:1", noise_var=0.7, rng=global_seed
    )
    q = theory.population_quantities(model)
    s = np.linalg.svd(model.loadings, compute_uv=False)
    # isotropic noise: gap = s_min(W)^2 and ||Sigma|| = s_max(W)^2 + sigma^2
    assert q.eigengap == pytest.approx(s[-1] ** 2, rel=1e-9)
    assert q.cov_norm == pytest.approx(s[0] ** 2 + 0.7, rel=1e-9)
    assert q.condition_number == pytest.approx(s[0] / s[-1], rel=1e-9)
    assert q.block_ranks == dict(zip(model.structure.blocks, model.structure.ranks, strict=True))


# ---------------------------------------------------------------- bounds
def test_covariance_concentration_hand_values():
    # N = n - 1 = 100, d = 25: delta = 0.5, 2 delta + delta^2 = 1.25
    assert theory.covariance_concentration(2.0, 25, 101) == pytest.approx(2.5)
    # known mean: N = n = 100
    assert theory.covariance_concentration(2.0, 25, 100, centred=False) == pytest.approx(2.5)
    # t = sqrt(2 log(2 / 0.05)); delta = (5 + t) / 10
    t = math.sqrt(2 * math.log(40))
    delta = (5 + t) / 10
    val = theory.covariance_concentration(1.0, 25, 101, confidence=0.95)
    assert val == pytest.approx(2 * delta + delta**2)
    arr = theory.covariance_concentration(1.0, 4, np.array([5, 17]))
    np.testing.assert_allclose(arr, [2 * 1 + 1, 2 * 0.5 + 0.25])


def test_covariance_concentration_holds_on_samples(global_seed):
    # with confidence 1 - 1e-9 the bound fails with probability <= 1e-9 per draw
    gen = np.random.default_rng(global_seed)
    model = hs.HierarchicalFactorModel.random((6, 7), "AB:2 A:1 B:1", noise_var=0.5, rng=gen)
    sigma = model.covariance()
    bound = theory.covariance_concentration(
        float(np.linalg.norm(sigma, 2)), 13, 200, confidence=1 - 1e-9
    )
    for _ in range(5):
        cov = model.sample(200, rng=gen).sample_cov()
        assert np.linalg.norm(cov - sigma, 2) <= bound


def test_loading_bound_hand_values():
    q = theory.population_quantities(_one_factor_model())
    # sharp, n = 9 (N = 8): delta = sqrt(2/8) = 1/2, eps = 5 * 1.25 = 6.25,
    # bound = sqrt(2K) (2 + 4 kappa^2) eps = sqrt(2) * 6 * 6.25
    assert theory.loading_bound(q, 9) == pytest.approx(math.sqrt(2) * 6 * 6.25)
    # paper: kappa sqrt(K) ||Sigma|| (sqrt(d/n) + d/n) / gap, times the constant
    val = theory.loading_bound(q, 8, form="paper", constant=3.0)
    assert val == pytest.approx(3.0 * 5 * (0.5 + 0.25) / 4)
    # per block: kappa_S sqrt(r_S) ||Sigma|| (...) / s_min(W^S)^2
    blk = theory.block_loading_bound(q, 8, frozenset({0, 1}))
    assert blk == pytest.approx(5 * 0.75 / 4)
    # Davis-Kahan: 2 sqrt(K) eps / gap, capped at sqrt(K)
    assert theory.subspace_bound(q, 10**6) == pytest.approx(
        2 * theory.covariance_concentration(5.0, 2, 10**6) / 4
    )
    assert theory.subspace_bound(q, 3) == pytest.approx(1.0)


def test_sharp_loading_bound_holds_for_naive_pca(global_seed):
    # the proven bound (constant 1) at confidence 1 - 1e-9 holds for NaivePCA
    gen = np.random.default_rng(global_seed)
    model = hs.HierarchicalFactorModel.random((8, 9), "AB:1 A:1 B:1", noise_var=1.0, rng=gen)
    q = theory.population_quantities(model)
    n = 400
    bound = theory.loading_bound(q, n, confidence=1 - 1e-9)
    fit = hs.estimators.NaivePCA().fit(model.sample(n, rng=gen), structure=model.structure)
    err = hs.metrics.overall_gram_error(fit, model)
    assert err <= bound
    # and the rate is not vacuous in n: the bound shrinks like sqrt(d/n)
    assert theory.loading_bound(q, 4 * n) < 0.6 * bound


def test_covariance_concentration_constants_are_attained(global_seed):
    """docs/theory.md §1: the constants 2 and 1 of (1) are sharp (Bai-Yin).

    For Sigma = I, d = 200, N = 800 the typical-scale value (t = 0) is
    2 sqrt(1/4) + 1/4 = 1.25 and ||Sigma_hat - I|| sits at the top edge minus a
    Tracy-Widom fluctuation (mean -0.04, sd 0.03 over 400 seeds; smallest ratio
    to the bound 0.92): within 12% of the bound, so a bound with constants 12%
    smaller would fail, while the 1 - 1e-9 version holds.
    """
    gen = np.random.default_rng(global_seed)
    d, n = 200, 801
    x = gen.standard_normal((n, d))
    x -= x.mean(axis=0)
    dev = np.linalg.norm(x.T @ x / (n - 1) - np.eye(d), 2)
    typical = theory.covariance_concentration(1.0, d, n)
    assert typical == pytest.approx(1.25)
    assert 0.88 * typical < dev <= theory.covariance_concentration(1.0, d, n, confidence=1 - 1e-9)


def test_subspace_bound_holds_on_samples(global_seed):
    """docs/theory.md §2: Davis-Kahan (op) and Yu-Wang-Samworth (Frobenius) on samples.

    Loadings with orthogonal columns of norms 3 and 2 (gap 4, ||Sigma|| = 10) and
    n = 20000, so that both bounds are below their caps (1 and sqrt(K)) and the
    check can fail.
    """
    gen = np.random.default_rng(global_seed)
    dims = (4, 5)
    basis = np.linalg.qr(gen.standard_normal((4, 4)))[0]
    u_b = np.linalg.qr(gen.standard_normal((5, 1)))[0][:, 0]
    w = np.zeros((9, 2))
    w[:4, 0], w[4:, 0] = 3 * basis[:, 0] / np.sqrt(2), 3 * u_b / np.sqrt(2)
    w[:4, 1] = 2 * basis[:, 1]
    model = hs.HierarchicalFactorModel(dims, hs.Structure.parse("AB:1 A:1"), w, noise_var=1.0)
    q = theory.population_quantities(model)
    assert q.eigengap == pytest.approx(4.0)
    assert q.cov_norm == pytest.approx(10.0)
    n, conf = 20000, 1 - 1e-9
    b_op = theory.subspace_bound(q, n, confidence=conf, norm="op")
    b_fro = theory.subspace_bound(q, n, confidence=conf)
    assert b_op < 0.8  # below the caps: not vacuous
    assert b_fro < 0.8 * np.sqrt(2)
    top = np.linalg.eigh(model.covariance())[1][:, -2:]
    for _ in range(3):
        est = np.linalg.eigh(model.sample(n, rng=gen).sample_cov())[1][:, -2:]
        cos = np.linalg.svd(top.T @ est, compute_uv=False)
        assert np.sqrt(max(1 - cos.min() ** 2, 0.0)) <= b_op
        assert np.sqrt(max(2 - np.sum(cos**2), 0.0)) <= b_fro


def test_downstream_bounds_hand_values():
    # sqrt(s2 K / (m - K - 1)) + c ||beta|| rep
    assert theory.beta_error_bound(111, 10, residual_var=4.0) == pytest.approx(
        math.sqrt(4 * 10 / 100)
    )
    assert theory.beta_error_bound(
        111, 10, residual_var=4.0, beta_norm=2.0, representation_error=0.1, constant=3.0
    ) == pytest.approx(math.sqrt(0.4) + 0.6)
    assert theory.excess_risk_bound(
        111, 10, residual_var=4.0, beta_norm=2.0, representation_error=0.1, constant=3.0
    ) == pytest.approx(0.4 + 0.36)
    assert theory.group_lasso_bound(
        50, n_relevant=3, max_rank=2, n_structures=7, residual_var=0.25
    ) == pytest.approx(0.5 * math.sqrt(3 * 2 * math.log(7) / 50))
    assert theory.group_lasso_bound(
        50, n_relevant=3, max_rank=2, n_structures=7, form="lounici"
    ) == pytest.approx(math.sqrt(3 * (2 + math.log(7)) / 50))


def test_beta_error_term_is_exact_without_feature_noise(global_seed):
    # Phi = 0 (features = z): E||beta_hat - beta||^2 = s2 K / (m - K - 1) exactly
    # (inverse-Wishart mean); the package's estimator is checked with noisy
    # features in test_eiv_constant_with_feature_noise.
    gen = np.random.default_rng(global_seed)
    k, m, s2, reps = 4, 30, 0.5, 4000
    z = gen.standard_normal((reps, m, k))
    eps = math.sqrt(s2) * gen.standard_normal((reps, m))
    err2 = np.empty(reps)
    for i in range(reps):
        d = np.linalg.lstsq(z[i], eps[i], rcond=None)[0]
        err2[i] = d @ d
    target = theory.beta_error_bound(m, k, residual_var=s2) ** 2
    se = err2.std(ddof=1) / math.sqrt(reps)
    assert abs(err2.mean() - target) < 6 * se


def test_eiv_constant_with_feature_noise(global_seed):
    """The package's EIV fit on the true representation with noisy features.

    ``(m - K - 1) E||beta_hat - beta||^2`` matches ``s^2 (K + tr Phi) + ||Phi beta||^2``
    (docs/theory.md §5) and not the noise-free ``s^2 K``; likewise the excess risk.
    """
    from hcl_stats import downstream as ds

    gen = np.random.default_rng(global_seed)
    model = hs.HierarchicalFactorModel.random(
        (6, 6), "AB:1 A:1 B:1", noise_var=0.5, singular_values=(1.0, 1.5), rng=global_seed
    )
    k, m, reps, s2y = 3, 600, 800, 0.1
    beta = ds.make_beta(model.structure, rng=global_seed)
    rep = ds.Representation.from_model(model)
    phi = rep.feature_noise()
    s2 = ds.residual_variance(model, beta, s2y)
    sigma = model.covariance()
    err2, exc = np.empty(reps), np.empty(reps)
    for i in range(reps):
        data = ds.sample_downstream(model, beta, m, noise_var_y=s2y, rng=gen)
        delta = ds.EIVRegression().fit(rep, data).coef - beta
        err2[i] = delta @ delta
        a = rep.coef.T @ delta
        exc[i] = a @ sigma @ a
    q = m - k - 1
    target = theory.beta_error_bound(m, k, residual_var=s2, feature_noise=phi, beta=beta) ** 2
    target_exc = theory.excess_risk_bound(m, k, residual_var=s2, feature_noise=phi, beta=beta)
    old = theory.beta_error_bound(m, k, residual_var=s2) ** 2
    for values, tgt in ((err2, target), (exc, target_exc)):
        se = values.std(ddof=1) / math.sqrt(reps)
        # asymptotic constant: allow the O(K/m) finite-m remainder (~2% here) plus MCSE
        assert abs(values.mean() - tgt) < 0.03 * tgt + 4 * se
        assert values.mean() - old > 6 * se  # the noise-free constant is rejected
    assert q * target == pytest.approx(
        s2 * (k + np.trace(phi)) + float((phi @ beta) @ (phi @ beta))
    )


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: theory.covariance_concentration(1.0, 3, 1), "n must be >= 2"),
        (lambda: theory.tail_t(1.0), "confidence must be < 1"),
        (lambda: theory.beta_error_bound(5, 4, residual_var=1.0), r"m must be > K \+ 1"),
        (
            lambda: theory.loading_bound(
                theory.population_quantities(_one_factor_model()), 10, form="x"
            ),
            "form must be 'sharp' or 'paper'",
        ),
        (
            lambda: theory.group_lasso_bound(10, n_relevant=1, max_rank=1, n_structures=2, form="y"),
            "form must be 'paper' or 'lounici'",
        ),
        (
            lambda: theory.block_loading_bound(
                theory.population_quantities(_one_factor_model()), 10, {0}
            ),
            "block must be one of the model's blocks",
        ),
    ],
)
def test_bound_validation(call, match):
    with pytest.raises(ValidationError, match=match):
        call()


# ---------------------------------------------------------------- fit_rate
def _synthetic(gen, slope, grid=(200, 400, 800, 1600, 3200), reps=30, noise=0.1, c=3.0):
    n = np.repeat(np.asarray(grid, dtype=float), reps)
    # heteroscedastic log-normal noise: the spread changes with n
    sd = noise * (1 + 0.5 * (np.log(n) - np.log(grid[0])) / np.log(grid[-1] / grid[0]))
    err = c * n**slope * np.exp(sd * gen.standard_normal(n.size))
    return pd.DataFrame({"n_samples": n, "error": err, "estimator": "a"})


def test_fit_rate_recovers_known_slope(global_seed):
    gen = np.random.default_rng(global_seed)
    df = _synthetic(gen, -0.5)
    fit = theory.fit_rate(df, expected=-0.5)
    # |slope - truth| < 6 robust SE fails with negligible probability for any seed
    assert abs(fit.slope + 0.5) < 6 * fit.se
    assert fit.se < 0.02
    assert fit.ci[0] < fit.slope < fit.ci[1]
    assert fit.n_obs == 150
    assert fit.n_dropped == 0
    # a wrong exponent is rejected
    wrong = theory.fit_rate(df, expected=-1.0)
    assert wrong.p_value < 1e-6
    assert wrong.consistent is False


def test_fit_rate_exact_power_law_and_bound_ratio():
    n = np.repeat([100.0, 1000.0, 10000.0], 2)
    err = 2.5 * n**-0.7
    fit = theory.fit_rate(
        {"n": n, "err": err}, x="n", y="err", expected=-0.7, bound=lambda g: g**-0.7
    )
    assert fit.slope == pytest.approx(-0.7, abs=1e-10)
    assert fit.intercept == pytest.approx(math.log(2.5), abs=1e-10)
    assert fit.fitted_constant == pytest.approx(2.5)
    np.testing.assert_allclose(fit.ratio, 2.5)
    assert fit.ratio_spread == pytest.approx(1.0)
    assert fit.ratio_slope == pytest.approx(0.0, abs=1e-10)
    assert fit.max_replicate_ratio == pytest.approx(2.5)
    # a bound with the wrong rate gives a trending ratio
    off = theory.fit_rate({"n": n, "err": err}, x="n", y="err", bound=lambda g: g**-0.5)
    assert off.ratio_slope == pytest.approx(-0.2, abs=1e-10)
    assert off.ratio_spread == pytest.approx(100**0.2)


def test_fit_rate_bound_column_and_dropping():
    rows = [
        {"n_samples": n, "error": 4.0 / math.sqrt(n), "b": 2.0 / math.sqrt(n)}
        for n in (100, 400, 1600)
    ] + [{"n_samples": 400, "error": 0.0, "b": 1.0}]
    fit = theory.fit_rate(rows, bound="b")
    assert fit.n_dropped == 1
    assert fit.fitted_constant == pytest.approx(2.0)
    assert fit.slope == pytest.approx(-0.5)
    assert "slope of log error on log n_samples" in str(fit)


def test_fit_rates_by_group(global_seed):
    gen = np.random.default_rng(global_seed)
    a = _synthetic(gen, -0.5).assign(estimator="a")
    b = _synthetic(gen, -1.0).assign(estimator="b")
    table = theory.fit_rates(pd.concat([a, b]), by=["estimator"], expected=-0.5)
    assert list(table["estimator"]) == ["a", "b"]
    assert abs(table["slope"][0] + 0.5) < 6 * table["se"][0]
    assert abs(table["slope"][1] + 1.0) < 6 * table["se"][1]
    assert not table["consistent"][1]


@pytest.mark.parametrize(
    ("data", "kwargs", "match"),
    [
        ({"n_samples": [1, 2], "e": [1, 2]}, {"y": "error"}, "must have a column 'error'"),
        ({"n_samples": [0, 2], "error": [1, 2]}, {}, "must be positive and finite"),
        ({"n_samples": [2, 2], "error": [1, 2]}, {}, "at least two distinct values"),
        ({"n_samples": [2, 4], "error": [1, 2]}, {"bound": "zz"}, "bound must be a callable or a column"),
        ({"n_samples": [2, 4], "error": [1, 2]}, {"bound": lambda g: -g}, "bound must be positive"),
        ([1, 2], {}, "sequence of row dicts"),
    ],
)
def test_fit_rate_validation(data, kwargs, match):
    with pytest.raises(ValidationError, match=match):
        theory.fit_rate(data, **kwargs)


@pytest.mark.parametrize(
    "data",
    [
        {"n_samples": [2, 4], "error": [1.0, 2.0]},  # n = p: both leverages are 1
        {"n_samples": [2, 2, 4], "error": [1.0, 1.5, 2.0]},  # lone row at n=4
        # the second row at n=4 is dropped (error 0), leaving a lone row again
        {"n_samples": [2, 2, 4, 4], "error": [1.0, 1.5, 2.0, 0.0]},
    ],
)
@pytest.mark.parametrize("cov_type", ["HC0", "HC1", "HC2", "HC3"])
def test_fit_rate_refuses_leverage_one_designs(data, cov_type):
    # checked before statsmodels runs, so no division by 1 - h_ii = 0 can warn
    with pytest.raises(ValidationError, match="at least three distinct values"):
        theory.fit_rate(data, cov_type=cov_type)


@pytest.mark.parametrize(
    "data",
    [
        {"n_samples": [2, 2, 4, 4], "error": [1.0, 1.5, 2.0, 2.5]},
        {"n_samples": [2, 4, 8], "error": [1.0, 2.0, 3.5]},
    ],
)
def test_fit_rate_smallest_allowed_designs_have_finite_hc3(data):
    fit = theory.fit_rate(data, expected=None)
    # every leverage < 1, so the HC3 standard error is finite and positive
    assert math.isfinite(fit.se)
    assert fit.se > 0
    assert fit.ci[0] < fit.slope < fit.ci[1]
    x = np.log(np.asarray(data["n_samples"], dtype=float))
    design = np.column_stack([np.ones_like(x), x])
    leverage = np.diag(design @ np.linalg.solve(design.T @ design, design.T))
    assert leverage.max() < 1 - 1e-9


def test_fit_rate_rejects_unknown_cov_type():
    with pytest.raises(ValidationError, match="cov_type must be one of HC0"):
        theory.fit_rate({"n_samples": [2, 4, 8], "error": [1, 2, 3]}, cov_type="HC9")


def test_fit_rate_checks_bound_column_before_fitting():
    # per-value means of b are positive, one replicate's bound is not; the design
    # (a lone row per value) would also fail, so this message proves the order
    data = {"n_samples": [2, 4, 4], "error": [1.0, 2.0, 2.0], "b": [1.0, 3.0, -1.0]}
    with pytest.raises(ValidationError, match=r"data\['b'\] must be positive"):
        theory.fit_rate(data, bound="b")


def test_plot_rate_returns_figure_with_ci_box():
    pytest.importorskip("matplotlib")
    from hcl_stats.theory.plots import plot_rate

    n = np.repeat([100.0, 400.0, 1600.0], 3)
    df = pd.DataFrame({
        "n": np.concatenate([n, n]),
        "err": np.concatenate([n**-0.5, 2 * n**-0.5]) * np.tile([0.9, 1.0, 1.1], 6),
        "est": ["a"] * 9 + ["b"] * 9,
    })
    fig = plot_rate(df, "n", "err", by="est", bound=lambda g, key: g**-0.5)
    ax = fig.axes[0]
    legend = ax.get_legend()
    entries = [t.get_text() for t in legend.get_texts()]
    assert entries[0].startswith("a: -0.500 [")  # slope -1/2 by construction, with its CI
    assert entries[1].startswith("b: -0.500 [")
    assert "95% CI" in legend.get_title().get_text()
    labels = [line.get_label() for line in ax.get_lines()]
    assert "b: bound x fitted constant 1.99" in labels


def test_rates_command_tables_from_tidy_rows(global_seed):
    from hcl_stats.theory.rates_report import rate_table, term_table

    gen = np.random.default_rng(global_seed)
    rows = []
    for cell, n in enumerate((100, 400, 1600)):
        for rep in range(8):
            noise = math.exp(0.05 * gen.standard_normal())
            base = {"cell_id": f"c{cell}", "rep": rep, "estimator": "est", "status": "ok",
                    "error": None, "dims": "[2, 3]", "n_samples": n}
            rows.append({**base, "metric": "err", "label": "overall",
                         "value": 3 * n**-0.5 * noise})
            rows.append({**base, "metric": "bnd", "label": "rate", "value": n**-0.5})
            rows.append({**base, "metric": "terms", "label": "t1", "value": 1 / n})
            rows.append({**base, "metric": "terms", "label": "t2", "value": 1.0})
            rows.append({**base, "metric": "risk", "label": "overall",
                         "value": 5.0 / n + 0.01})
    tidy = pd.DataFrame(rows)
    spec = {"name": "r", "metric": "err", "label": "overall", "x": "n_samples",
            "expected": -0.5, "bound": "bnd:rate"}
    table = rate_table(tidy, spec, ["est"])
    assert len(table) == 1
    assert abs(table["slope"][0] + 0.5) < 6 * table["se"][0]
    assert table["fitted_constant"][0] == pytest.approx(3.0, rel=0.1)
    with pytest.raises(ValidationError, match="at least two distinct values"):
        rate_table(tidy, {**spec, "x": "d", "by": ["n_samples"], "bound": None}, ["est"])
    terms = term_table(tidy, {"name": "t", "metric": "risk", "label": "overall",
                              "terms": ["t1", "t2"], "terms_metric": "terms",
                              "group": "n_samples"}, ["est"])
    assert terms["c[t1]"][0] == pytest.approx(5.0)
    assert terms["c[t2]"][0] == pytest.approx(0.01)
    with pytest.raises(ValidationError, match="has no results in the store"):
        rate_table(tidy, {**spec, "metric": "nope"}, ["est"])
