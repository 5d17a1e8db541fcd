"""Per-view shrinkage of shared blocks (``MaskedShrink(view_weights=True)``).

The derivation (docs/shrinkage.md §5.6): a sample eigenvector of a block is
``v = c u + s xi`` with ``xi`` uniform on the sphere orthogonal to the signal, so its
noise spreads over the views in proportion to ``d_m``. The per-view factor
``F_m = V_m Q_m^+ C P_m L^{1/2}`` minimises the limiting Gram loss among factors
``V_m B_m``. Tested here: its closed forms, its reduction to the per-component
weights when every view carries the signal in proportion to its size, the
predicted risks on exact draws of ``v`` on both sides of that condition, and the
fitted estimator (population identity, both paths, replicate means).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import hcl_stats as hs
from hcl_stats._linalg import block_offsets
from hcl_stats.estimators._block_shrink import view_weighted_factor
from hcl_stats.exceptions import ValidationError
from hcl_stats.sampling import wishart_sample_cov

pytestmark = pytest.mark.filterwarnings("ignore::hcl_stats.exceptions.BlockDroppedWarning")


def _slices(sizes):
    ends = block_offsets(sizes)
    return [slice(a, b) for a, b in zip(ends[:-1], ends[1:], strict=True)]


def test_rank_one_closed_form():
    # F_m = sqrt(ell) c p_m / w_m v_m with p_m = (w_m - q_m s^2) / c^2 clipped to [0, 1]
    rng = np.random.default_rng(0)
    v = rng.standard_normal((9, 1))
    v /= np.linalg.norm(v)
    sizes, ell, c2 = (2, 3, 4), 5.0, 0.6
    q = np.array(sizes) / 9.0
    f, share = view_weighted_factor(v, np.array([ell]), np.array([c2]), _slices(sizes), q)
    for sl, qm, sh in zip(_slices(sizes), q, share, strict=True):
        w = float(v[sl, 0] @ v[sl, 0])
        p = min(max(w - qm * (1 - c2), 0.0) / c2, 1.0)
        coef = np.sqrt(ell) * np.sqrt(c2) * p / w
        np.testing.assert_allclose(f[sl, 0], coef * v[sl, 0], rtol=1e-12, atol=1e-15)
        assert sh == pytest.approx(p, rel=1e-12)


def test_bounded_at_the_detection_edge():
    # c^2 -> 0 (an eigenvalue just above the edge): the per-component weight ell c^2
    # vanishes, and so must the per-view factor, although P_m's unclipped estimate
    # (Q_m - q_m s^2) / c^2 grows like 1 / c^2
    rng = np.random.default_rng(1)
    v = rng.standard_normal((360, 1))
    v /= np.linalg.norm(v)
    sizes = (40, 120, 200)
    q = np.array(sizes) / 360.0
    norms = []
    for c2 in (1e-3, 1e-6, 1e-10):
        f, share = view_weighted_factor(v, np.array([1.0]), np.array([c2]), _slices(sizes), q)
        assert np.all(share <= 1.0)
        norms.append(float(np.linalg.norm(f)))
    assert norms[0] > norms[1] > norms[2]
    assert norms[2] < 1e-3


@given(
    sizes=st.lists(st.integers(1, 6), min_size=1, max_size=4),
    k=st.integers(1, 3),
    ell=st.lists(st.floats(0.1, 50.0), min_size=3, max_size=3),
    c2=st.lists(st.floats(0.05, 1.0), min_size=3, max_size=3),
    seed=st.integers(0, 2**16),
)
def test_proportional_views_give_the_per_component_weights(sizes, k, ell, c2, seed):
    # V_m^T V_m = q_m I exactly (each view an orthonormal block scaled by sqrt(q_m)):
    # P_m = q_m I, and F = V C L^{1/2}, the weights eta = ell c^2 of Section 2
    sizes = [max(d, k) for d in sizes]  # d_m >= k so that V_m^T V_m can be q_m I
    rng = np.random.default_rng(seed)
    q = np.array(sizes, dtype=float) / sum(sizes)
    v = np.vstack([np.linalg.qr(rng.standard_normal((d, k)))[0] * np.sqrt(qm)
                   for d, qm in zip(sizes, q, strict=True)])
    ell_k, c2_k = np.array(ell[:k]), np.array(c2[:k])
    f, share = view_weighted_factor(v, ell_k, c2_k, _slices(sizes), q)
    np.testing.assert_allclose(f, v * np.sqrt(ell_k * c2_k), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(share, q, rtol=1e-9, atol=1e-12)


def _draw_eigenvector(rng, sizes, p_share, c2):
    """v = c u + s xi: u with ||u_m||^2 = p_m, xi uniform on the sphere orthogonal to u."""
    u = np.concatenate([rng.standard_normal(d) for d in sizes])
    ends = np.cumsum([0, *sizes])
    for i, p in enumerate(p_share):
        u[ends[i]:ends[i + 1]] *= np.sqrt(p) / np.linalg.norm(u[ends[i]:ends[i + 1]])
    xi = rng.standard_normal(u.size)
    xi -= (xi @ u) * u
    xi /= np.linalg.norm(xi)
    return u, np.sqrt(c2) * u + np.sqrt(1 - c2) * xi


@pytest.mark.parametrize(
    ("p_share", "risk_views", "risk_component"),
    [
        # signal 5x denser per coordinate in the small view: the per-view factor wins;
        # limiting relative squared errors 1 - c^4 A^2 and 1 - c^4 (derivation in
        # docs/shrinkage.md §5.6; A = sum_m p_m^2 / (c^2 p_m + s^2 q_m))
        ((0.5, 0.5), 1 - 0.375**2 * (0.25 / 0.25 + 0.25 / 0.75) ** 2, 1 - 0.375**2),
        # signal in proportion to size (the condition's other side): no gain
        ((0.1, 0.9), 1 - 0.375**2, 1 - 0.375**2),
    ],
)
def test_predicted_risk_on_exact_eigenvector_draws(p_share, risk_views, risk_component,
                                                   global_seed):
    rng = np.random.default_rng(global_seed)
    sizes, ell = (400, 3600), 8.0
    c2 = (1 - 10 / ell**2) / (1 + 10 / ell)  # gamma = 10: c^2 = 0.375
    u, v = _draw_eigenvector(rng, sizes, p_share, c2)
    truth = ell * np.outer(u, u)
    q = np.array(sizes) / sum(sizes)
    f, _ = view_weighted_factor(v[:, None], np.array([ell]), np.array([c2]),
                                _slices(sizes), q)
    err_views = np.linalg.norm(f @ f.T - truth) ** 2 / ell**2
    err_component = np.linalg.norm(ell * c2 * np.outer(v, v) - truth) ** 2 / ell**2
    assert err_views == pytest.approx(risk_views, abs=0.02)
    assert err_component == pytest.approx(risk_component, abs=0.02)
    if risk_views < risk_component - 0.05:
        assert err_views < err_component


def test_population_fit_is_unchanged_and_private_blocks_are_untouched(global_seed):
    model = hs.HierarchicalFactorModel.random((6, 8, 10), "ABC:2 AB:1 C:1",
                                              rng=global_seed)
    cov = model.covariance()
    kw = dict(dims=model.dims, structure=model.structure)
    plain = hs.estimators.MaskedShrink().fit_covariance(cov, **kw)
    weighted = hs.estimators.MaskedShrink(view_weights=True).fit_covariance(cov, **kw)
    np.testing.assert_array_equal(plain.loadings, weighted.loadings)
    s = wishart_sample_cov(model, 60, rng=global_seed)
    plain = hs.estimators.MaskedShrink().fit_covariance(s, n_samples=60, **kw)
    weighted = hs.estimators.MaskedShrink(view_weights=True).fit_covariance(
        s, n_samples=60, **kw)
    cols = model.structure.columns(frozenset({2}))
    np.testing.assert_array_equal(plain.loadings[:, cols], weighted.loadings[:, cols])
    shares = weighted.diagnostics.extra["blocks"]["ABC"].get("view_signal_share")
    assert shares is None or set(shares) == {"A", "B", "C"}


def test_replicate_mean_error_falls_on_the_validation_design(global_seed):
    # the out-of-sample design of docs/shrinkage.md §5.5 at sigma^2 = 1, n = 1000,
    # where every one of 8 replicates improved (benchmarks/README.md)
    rng = np.random.default_rng(global_seed)
    errs = {False: [], True: []}
    for _ in range(4):
        model = hs.HierarchicalFactorModel.random(
            (40, 120, 200), "ABC:2 AB:1 AC:2 A:1 B:3 C:2", noise_var=1.0, rng=rng)
        s = wishart_sample_cov(model, 1000, rng=rng)
        for vw in errs:
            fit = hs.estimators.MaskedShrink(view_weights=vw).fit_covariance(
                s, dims=model.dims, structure=model.structure, n_samples=1000)
            errs[vw].append(hs.metrics.overall_gram_error(fit, model, relative=True))
    assert np.mean(errs[True]) < np.mean(errs[False])


def test_both_paths_agree_with_view_weights(rng):
    model = hs.HierarchicalFactorModel.random((30, 60, 90), "all:2", noise_var=1.0,
                                              singular_values=(3.0, 5.0), rng=rng)
    data = model.sample(25, rng=rng)
    est = hs.estimators.MaskedShrink(view_weights=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = est.fit(data, structure=model.structure, path="covariance")
        b = est.fit(data, structure=model.structure, path="samples")
    ga, gb = a.loadings @ a.loadings.T, b.loadings @ b.loadings.T
    assert np.linalg.norm(ga - gb) <= 1e-8 * np.linalg.norm(ga)
    assert (a.diagnostics.extra["blocks"]["ABC"]["view_signal_share"]
            == pytest.approx(b.diagnostics.extra["blocks"]["ABC"]["view_signal_share"],
                             rel=1e-8))


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_view_weights_must_be_a_bool(bad):
    with pytest.raises(ValidationError, match="view_weights must be True or False"):
        hs.estimators.MaskedShrink(view_weights=bad)
    est = hs.estimators.MaskedShrink(view_weights=np.True_)
    assert est.view_weights is True


@given(
    sizes=st.lists(st.integers(1, 5), min_size=2, max_size=4),
    k=st.integers(1, 4),
    ell=st.lists(st.floats(0.01, 100.0), min_size=4, max_size=4),
    c2=st.lists(st.floats(1e-12, 1.0), min_size=4, max_size=4),
    seed=st.integers(0, 2**16),
)
def test_each_view_gram_is_bounded_by_the_spikes(sizes, k, ell, c2, seed):
    # For any orthonormal V (views of d_m < k included) and any spikes and cosines:
    # F_m^T F_m <= L^{1/2} P_m L^{1/2} <= L in the Loewner order, because the
    # estimate keeps Q_m^{+1/2} C P_m C Q_m^{+1/2} <= I and 0 <= P_m <= I
    # (docs/shrinkage.md section 5.6). Without that step
    # Q_m^+ amplified a nearly singular view without bound (1e6 times L).
    p = sum(sizes)
    k = min(k, p)
    rng = np.random.default_rng(seed)
    v = np.linalg.qr(rng.standard_normal((p, k)))[0]
    ell_k, c2_k = np.array(ell[:k]), np.array(c2[:k])
    q = np.array(sizes, dtype=float) / p
    f, share = view_weighted_factor(v, ell_k, c2_k, _slices(sizes), q)
    assert np.all(np.isfinite(f))
    assert np.all((share >= 0.0) & (share <= 1.0 + 1e-12))
    scale = 1.0 / np.sqrt(ell_k)
    for rows in _slices(sizes):
        g = (f[rows] * scale).T @ (f[rows] * scale)
        assert np.linalg.eigvalsh(g)[-1] <= 1.0 + 1e-8


def test_nearly_singular_view_does_not_inflate_the_fit():
    # two coordinates per view and a rank-2 block with one weak component: Q_m is
    # nearly singular. Before Q_m^{+1/2} C P_m C Q_m^{+1/2} <= I was kept, the factor gave
    # ||W W^T|| = 22.9 on these data, against ||S|| = 6.7 and the truth's 3.36
    model = hs.HierarchicalFactorModel.random((2, 2, 2), "ABC:2", rng=31,
                                              singular_values=(0.3, 1.2))
    data = model.sample(24, rng=1031)
    s = np.cov(np.hstack(data.Xs).T)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = hs.estimators.MaskedShrink().fit(data, structure="ABC:2")
        flat = hs.estimators.MaskedShrink(view_weights=False).fit(data, structure="ABC:2")
    top = np.linalg.norm(fit.loadings @ fit.loadings.T, 2)
    assert top <= np.linalg.norm(s, 2)
    assert (hs.metrics.overall_gram_error(fit, model, relative=True)
            <= hs.metrics.overall_gram_error(flat, model, relative=True))


def test_view_weights_are_the_default():
    assert hs.estimators.MaskedShrink().view_weights is True
    model = hs.HierarchicalFactorModel.random((10, 40, 80), "ABC:2 A:1", noise_var=1.0,
                                              singular_values=(2.0, 3.0), rng=5)
    s = wishart_sample_cov(model, 200, rng=6)
    kw = {"dims": model.dims, "structure": model.structure, "n_samples": 200}
    fits = {vw: hs.estimators.MaskedShrink(view_weights=vw).fit_covariance(s, **kw)
            for vw in (True, False)}
    default = hs.estimators.MaskedShrink().fit_covariance(s, **kw)
    np.testing.assert_array_equal(default.loadings, fits[True].loadings)
    assert np.abs(fits[True].loadings - fits[False].loadings).max() > 1e-6
    assert "view_signal_share" in default.diagnostics.extra["blocks"]["ABC"]


def test_learn_passes_refit_options_to_its_refit():
    model = hs.HierarchicalFactorModel.random((8, 12, 15), "ABC:2 AB:1 C:1", noise_var=1.0,
                                              singular_values=(2.0, 3.0), rng=0)
    data = model.sample(2000, rng=1)
    learn = hs.estimators.get("learn")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pinned = learn(select="eigen", refit_options={"view_weights": False}).fit(data)
        default = learn(select="eigen").fit(data)
        direct = hs.estimators.MaskedShrink(view_weights=False).fit(
            data, structure=pinned.structure)
    np.testing.assert_array_equal(pinned.loadings, direct.loadings)
    assert np.abs(pinned.loadings - default.loadings).max() > 1e-6


@pytest.mark.parametrize(("bad", "message"), [
    ([("view_weights", False)], "refit_options must be a dict of keyword arguments"),
    ({"noise_rule": "scalar"}, "refit_options must contain only keyword arguments"),
    ({"bogus": 1}, "refit_options must contain only keyword arguments"),
    ({"view_weights": "no"}, "refit_options=.* do not make a valid refit 'masked_shrink': "
                             "view_weights must be True or False"),
])
def test_refit_options_errors_name_the_argument(bad, message):
    with pytest.raises(ValidationError, match=message):
        hs.estimators.get("learn")(refit_options=bad)
