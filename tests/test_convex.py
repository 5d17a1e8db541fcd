"""The weighted-trace convex relaxation: population exact recovery, solvers, selection.

Theorem 1 of docs/convex.md is checked as a property over random structure
families whose loadings satisfy its conditions (C1 balance, C2 within-view
orthogonality); a violated condition gives a wrong structure (counterexample).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import identifiable_models

import hcl_stats as hs
from hcl_stats.cli import main
from hcl_stats.estimators import ConvexFast, SchurSelect
from hcl_stats.estimators._convex_core import (
    Layout,
    candidate_blocks,
    certificate,
    factors_to_mats,
    objective,
    solve_factored,
    solve_prox,
)
from hcl_stats.estimators.convex import select_from_solution
from hcl_stats.estimators.selection import (
    debias_spikes,
    estimate_noise_var_mp,
    mp_median,
    select_structure_schur,
)
from hcl_stats.exceptions import NotIdentifiableError, ValidationError
from hcl_stats.identifiability import schur_rank


def balanced_orthogonal(dims, structure, rng, sv=(0.5, 1.5)):
    """Loadings satisfying (C1) and (C2): W_m^S = Q_m^S G_S / sqrt(|S|), Q's orthogonal."""
    off = np.concatenate([[0], np.cumsum(dims)])
    bases = [np.linalg.qr(rng.standard_normal((d, d)))[0] for d in dims]
    used = [0] * len(dims)
    w = np.zeros((sum(dims), structure.total_rank))
    grams = {}
    for b, r in zip(structure.blocks, structure.ranks, strict=True):
        q, _ = np.linalg.qr(rng.standard_normal((r, r)))
        g = q * rng.uniform(*sv, size=r)
        grams[b] = np.sort(np.linalg.eigvalsh(g.T @ g))[::-1]
        cols = structure.columns(b)
        for m in sorted(b):
            w[off[m] : off[m + 1], cols] = (
                bases[m][:, used[m] : used[m] + r] @ g / np.sqrt(len(b))
            )
            used[m] += r
    return w, grams


@st.composite
def conditioned_families(draw):
    """A random structure family (some subsets absent) with (C1)-(C2) loadings."""
    m = draw(st.integers(2, 3))
    subsets = list(candidate_blocks(m))
    chosen = draw(st.lists(st.sampled_from(subsets), min_size=1, max_size=len(subsets), unique=True))
    ranks = draw(st.lists(st.integers(1, 2), min_size=len(chosen), max_size=len(chosen)))
    s = hs.Structure(m, tuple(chosen), tuple(ranks))
    dims = tuple(s.view_rank(v) + draw(st.integers(0, 2)) + 1 for v in range(m))
    seed = draw(st.integers(0, 2**32 - 1))
    w, grams = balanced_orthogonal(dims, s, np.random.default_rng(seed))
    return s, dims, w, grams


@settings(max_examples=25)
@given(conditioned_families(), st.floats(0.05, 0.9))
def test_population_exact_recovery_under_conditions(family, frac):
    """Theorem 1: support, ranks and the shrunk spectra are exact for lam < lam*."""
    s, dims, w, grams = family
    layout = Layout.build(dims, candidate_blocks(len(dims)), 0.5)
    weight = dict(zip(layout.candidates, layout.weights, strict=True))
    lam_star = min(grams[b][-1] / weight[b] for b in s.blocks)
    lam = frac * lam_star
    factors, info = solve_factored(layout, w @ w.T, lam, tol=1e-10)
    mats = factors_to_mats(layout, factors)
    scale = float(np.linalg.norm(w @ w.T, 2))
    selected, _ = select_from_solution(mats, layout, [1e-6 * scale] * len(mats))
    assert selected == s
    for b, mat in zip(layout.candidates, mats, strict=True):
        vals = np.sort(np.linalg.eigvalsh(mat))[::-1]
        if b in s:
            r = s.rank_of(b)
            np.testing.assert_allclose(vals[:r], grams[b] - lam * weight[b], atol=1e-5 * scale)
            assert np.all(np.abs(vals[r:]) <= 1e-6 * scale)
        else:
            assert np.all(np.abs(vals) <= 1e-6 * scale)


@settings(max_examples=25)
@given(conditioned_families(), st.data())
def test_above_lam_star_components_are_soft_thresholded_away(family, data):
    """Theorem 1, other side of ``lam < lam*``: for lam >= lam* ranks drop.

    Under (C1)-(C2) the certificate of the proof gives, for every lam > 0, the
    solution ``L_S = U_S (Gamma_S - lam w_S)_+ U_S^T``: each component with
    ``gamma <= lam w_S`` is dropped, so a block loses ranks (or vanishes) exactly
    when lam passes its ratio ``gamma / w_S``.
    """
    s, dims, w, grams = family
    layout = Layout.build(dims, candidate_blocks(len(dims)), 0.5)
    weight = dict(zip(layout.candidates, layout.weights, strict=True))
    ratios = sorted(g / weight[b] for b in s.blocks for g in grams[b])
    # cut between two ratios at least 20% apart, or above the largest (all dropped)
    cuts = [j for j in range(len(ratios) - 1) if ratios[j + 1] > 1.2 * ratios[j]]
    j = data.draw(st.sampled_from([*cuts, len(ratios) - 1]))
    if j < len(ratios) - 1:
        lam = float(np.sqrt(ratios[j] * ratios[j + 1]))  # lam* = ratios[0] < lam
    else:
        lam = 1.5 * ratios[-1]
    factors, _ = solve_factored(layout, w @ w.T, lam, tol=1e-10)
    mats = factors_to_mats(layout, factors)
    scale = float(np.linalg.norm(w @ w.T, 2))
    selected, _ = select_from_solution(mats, layout, [1e-6 * scale] * len(mats))
    kept = {b: int(np.sum(grams[b] > lam * weight[b])) for b in s.blocks}
    assert sum(s.ranks) - sum(kept.values()) == j + 1  # one rank per ratio below lam
    if j == len(ratios) - 1:
        assert selected is None  # every block absent
    else:
        assert selected == hs.Structure(
            len(dims),
            tuple(b for b in s.blocks if kept[b]),
            tuple(kept[b] for b in s.blocks if kept[b]),
        )
    for b, mat in zip(layout.candidates, mats, strict=True):
        vals = np.sort(np.linalg.eigvalsh(mat))[::-1]
        expect = np.zeros(len(vals))
        if b in s:
            shrunk = np.clip(grams[b] - lam * weight[b], 0.0, None)
            expect[: len(shrunk)] = np.sort(shrunk)[::-1]
        np.testing.assert_allclose(vals, expect, atol=1e-5 * scale)


def test_counterexample_imbalanced_global_block():
    """(C1) violated: a global block that barely loads on C is not recovered."""
    rng = np.random.default_rng(0)
    dims = (5, 6, 7)
    s = hs.Structure.parse("ABC:1 AB:2 C:1 A:1")
    w, _ = balanced_orthogonal(dims, s, rng)
    w[11:, s.columns(frozenset({0, 1, 2}))] *= 0.1  # view C carries 1% of the block
    layout = Layout.build(dims, candidate_blocks(3), 0.5)
    factors, _ = solve_factored(layout, w @ w.T, 1e-3, tol=1e-10)
    selected, scores = select_from_solution(
        factors_to_mats(layout, factors), layout, [1e-4] * len(layout.candidates)
    )
    # the necessary condition 2(ab+ac+bc)(w2-w1) > (a^2+b^2+c^2)(w3-w1) fails
    a = b = 1.0
    c = 0.1
    w1, w2, w3 = 1.0, np.sqrt(2.0), np.sqrt(3.0)
    assert 2 * (a * b + a * c + b * c) * (w2 - w1) < (a * a + b * b + c * c) * (w3 - w1)
    assert selected != s
    assert selected.rank_of(frozenset({0, 1})) == 3  # AB absorbs the global block


def test_equal_weights_are_not_unique():
    """With w_S = 1 a specific component moves into a larger block at equal cost."""
    rng = np.random.default_rng(1)
    dims = (3, 3)
    s = hs.Structure.parse("AB:1 A:1")
    w, _ = balanced_orthogonal(dims, s, rng)
    layout = Layout.build(dims, candidate_blocks(2), 0.0)  # equal weights
    true_mats = [np.zeros((6, 6)), np.zeros((3, 3)), np.zeros((3, 3))]
    ab, a = s.columns(frozenset({0, 1})), s.columns(frozenset({0}))
    true_mats[0] = w[:, ab] @ w[:, ab].T
    true_mats[1] = w[:3, a] @ w[:3, a].T
    moved = [true_mats[0].copy(), np.zeros((3, 3)), np.zeros((3, 3))]
    moved[0][:3, :3] += true_mats[1]
    assert objective(layout, w @ w.T, true_mats, 0.1) == pytest.approx(
        objective(layout, w @ w.T, moved, 0.1), rel=1e-12
    )
    sqrt_layout = Layout.build(dims, candidate_blocks(2), 0.5)
    assert objective(sqrt_layout, w @ w.T, true_mats, 0.1) < objective(
        sqrt_layout, w @ w.T, moved, 0.1
    )


@pytest.fixture(scope="module")
def noisy_problem():
    rng = np.random.default_rng(3)
    dims = (6, 7, 8)
    model = hs.HierarchicalFactorModel.random(dims, "ABC:1 AB:2 C:1 A:1", rng=rng)
    cov = model.sample(400, rng=rng).sample_cov()
    s_w = cov - model.noise_var * np.eye(sum(dims))
    return dims, s_w


def test_factored_and_prox_solvers_agree(noisy_problem):
    dims, s_w = noisy_problem
    layout = Layout.build(dims, candidate_blocks(3), 0.5)
    lam = 0.05
    factors, info_f = solve_factored(layout, s_w, lam, tol=1e-8)
    mats_p, info_p = solve_prox(layout, s_w, lam, tol=1e-7)
    f_f = objective(layout, s_w, factors_to_mats(layout, factors), lam)
    f_p = objective(layout, s_w, mats_p, lam)
    assert abs(f_f - f_p) <= 1e-6 * abs(f_p)
    assert info_f["relative_gap"] <= 1e-6
    tau = [0.5 * lam * w for w in layout.weights]
    s_f, _ = select_from_solution(factors_to_mats(layout, factors), layout, tau)
    s_p, _ = select_from_solution(mats_p, layout, tau)
    assert s_f == s_p


def test_certificate_bounds_the_objective(noisy_problem):
    dims, s_w = noisy_problem
    layout = Layout.build(dims, candidate_blocks(3), 0.5)
    zero = [np.zeros((r.size, r.size)) for r in layout.rows]
    cert = certificate(layout, s_w, zero, 0.05)
    factors, _ = solve_factored(layout, s_w, 0.05)
    best = objective(layout, s_w, factors_to_mats(layout, factors), 0.05)
    assert cert["dual"] <= best + 1e-9 <= cert["primal"] + 1e-9
    # a penalty above every lambda_max(S_W[S,S]) / w_S makes zero optimal
    big = 1.01 * max(
        np.linalg.eigvalsh(s_w[np.ix_(r, r)])[-1] / w
        for r, w in zip(layout.rows, layout.weights, strict=True)
    )
    assert certificate(layout, s_w, zero, big)["gap"] == pytest.approx(0.0, abs=1e-9)
    factors, info = solve_factored(layout, s_w, big)
    assert sum(f.shape[1] for f in factors) == 0
    assert info["converged"]


def test_warm_started_penalty_path_matches_cold_solves(noisy_problem):
    from hcl_stats.estimators.convex import penalty_path

    dims, s_w = noisy_problem
    layout = Layout.build(dims, candidate_blocks(3), 0.5)
    for lam, mats, _ in penalty_path(s_w, dims, [0.2, 0.05, 0.1]):
        cold, _ = solve_factored(layout, s_w, lam)
        f_cold = objective(layout, s_w, factors_to_mats(layout, cold), lam)
        assert objective(layout, s_w, mats, lam) == pytest.approx(f_cold, rel=1e-6)


@settings(max_examples=20)
@given(identifiable_models(max_views=3, max_rank=2))
def test_schur_selector_population_exact(model):
    """Proposition 3: the Schur selector is exact at the population level."""
    fit = SchurSelect().fit_covariance(model.covariance(), dims=model.dims)
    assert fit.structure == model.structure
    assert max(hs.metrics.structure_gram_errors(fit, model, relative=True).values()) < 1e-6


@pytest.mark.parametrize(("d_b", "exact"), [(3, False), (4, True)])
def test_schur_selector_needs_the_matching_condition(d_b, exact, global_seed):
    """Proposition 3, both sides of its condition on a design with d_O >= k_O.

    ``AB:2 B:2 A:1 C:1``: for the block A, O = {B, C} has d_O = d_B + 10 >= k_O = 5,
    but with d_B = 3 the blocks AB and B (4 columns) load within O only on the 3
    rows of view B, so C_O is rank deficient (Hall fails; docs/identifiability.md,
    Theorem 3) and part of AB stays in A_S. With d_B = 4 the matching exists and
    C_O has full column rank unless the draw is numerically near the degenerate
    set (the selector's population rank tolerance is 1e-6 relative): then the
    proposition's hypothesis fails at that model and nothing is asserted.
    """
    dims = (10, d_b, 10)
    model = hs.HierarchicalFactorModel.random(dims, "AB:2 B:2 A:1 C:1", rng=global_seed)
    s_w = model.signal_covariance()
    selected, _ = select_structure_schur(s_w, dims, 1.0, None)
    outside = np.linalg.eigvalsh(s_w[10:, 10:])[::-1]
    full_rank = bool(outside[4] > 1e-4 * outside[0])  # k_O = 5 directions in O?
    if not exact:
        assert not full_rank  # structurally rank 4
        assert selected != model.structure
    elif full_rank:
        assert selected == model.structure
    assert schur_rank(model.structure, dims, {0}) == ((4, 5) if d_b == 3 else (5, 5))


def test_convex_fast_population_end_to_end():
    model = hs.HierarchicalFactorModel.random((8, 9, 10), "ABC:1 AB:1 BC:1 A:1", rng=5)
    fit = ConvexFast().fit_covariance(model.covariance(), dims=model.dims)
    assert fit.structure == model.structure
    extra = fit.diagnostics.extra
    assert {"selection_scores", "penalty", "weights", "refit"} <= set(extra)
    assert max(hs.metrics.structure_gram_errors(fit, model, relative=True).values()) < 1e-6
    # a given structure restricts the candidates (its ranks are ignored)
    fit2 = ConvexFast().fit_covariance(
        model.covariance(), dims=model.dims, structure="ABC:5 AB:5 BC:5 A:5 C:5"
    )
    assert fit2.structure == model.structure
    assert len(fit2.diagnostics.extra["selection_scores"]["convex"]) == 5


def test_convex_fast_sample_recovers_strong_structure(global_seed):
    model = hs.HierarchicalFactorModel.random(
        (10, 12, 14), "ABC:1 AB:2 C:1", noise_var=0.2, singular_values=(1.0, 1.5),
        rng=np.random.default_rng([5, global_seed]),
    )
    data = model.sample(20000, rng=np.random.default_rng([6, global_seed]))
    fit = ConvexFast().fit(data)
    assert fit.structure == model.structure
    assert fit.n_samples == 20000


def test_learners_raise_when_nothing_is_selected(rng):
    data = [rng.standard_normal((300, 4)), rng.standard_normal((300, 5))]
    with pytest.raises(NotIdentifiableError, match="selected no block"):
        ConvexFast().fit(data)
    with pytest.raises(NotIdentifiableError, match="selected no block"):
        SchurSelect().fit(data)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"weight_power": 1.0}, "weight_power must be in"),
        ({"weight_power": 0.0}, "weight_power must be in"),
        ({"refit": "bogus"}, "refit must be one of"),
        ({"method": "newton"}, "method must be one of"),
        ({"penalty": -1.0}, "penalty must be"),
    ],
)
def test_convex_fast_rejects_bad_options(kwargs, match):
    with pytest.raises(ValidationError, match=match):
        ConvexFast(**kwargs)


def test_too_many_views_is_rejected():
    dims = (2,) * 7
    with pytest.raises(ValidationError, match="number of views must be <= 6"):
        ConvexFast().fit_covariance(np.eye(14), dims=dims)


def test_convergence_warning_when_the_solver_stops_early(noisy_problem):
    dims, s_w = noisy_problem
    cov = s_w + np.eye(sum(dims))
    with pytest.warns(hs.exceptions.ConvergenceWarning, match="certified relative gap"):
        fit = ConvexFast(method="prox", max_iter=3, penalty=0.05, noise_rule=1.0).fit_covariance(
            cov, dims=dims, n_samples=400
        )
    assert any("ConvergenceWarning" in w for w in fit.diagnostics.warnings)


def test_noise_and_spike_helpers():
    # MP median lies inside the support and decreases below 1 as gamma grows
    for g in (0.01, 0.1, 0.5):
        m = mp_median(g)
        assert (1 - np.sqrt(g)) ** 2 < m < 1.0
    # debias_spikes inverts the BBP map l -> (l + s2)(1 + g s2 / l) - s2
    ell, s2, p, n = 2.0, 1.5, 50, 500
    g = p / n
    mu = (ell + s2) * (1 + g * s2 / ell) - s2
    back, c2 = debias_spikes(np.array([mu]), s2, p, n)
    assert back[0] == pytest.approx(ell, rel=1e-10)
    assert 0 < c2[0] < 1
    # the bulk-median noise estimate is close to sigma^2 for pure noise
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 100)) * np.sqrt(3.0)
    assert estimate_noise_var_mp(np.cov(x, rowvar=False), 2000) == pytest.approx(3.0, rel=0.03)
    # d > n: only the n - 1 non-zero eigenvalues carry information
    x = rng.standard_normal((200, 300)) * np.sqrt(3.0)
    assert estimate_noise_var_mp(np.cov(x, rowvar=False), 200) == pytest.approx(3.0, rel=0.05)


def test_schur_selector_population_scores_expose_spectra():
    model = hs.HierarchicalFactorModel.random((4, 5, 6), "ABC:1 C:2", rng=2)
    s, scores = select_structure_schur(model.signal_covariance(), model.dims, 1.0, None)
    assert s == model.structure
    assert set(scores) == {"".join("ABC"[i] for i in sorted(b)) for b in candidate_blocks(3)}
    assert scores["C"]["rank"] == 2
    assert scores["AB"]["rank"] == 0


def test_cli_fit_without_structure_writes_learned_structure(tmp_path):
    model = hs.HierarchicalFactorModel.random(
        (6, 7, 8), "ABC:1 AB:1 C:1", noise_var=0.1, singular_values=(1.0, 1.5), rng=4
    )
    data = model.sample(20000, rng=5)
    off = np.concatenate([[0], np.cumsum(model.dims)])
    views = {f"v{m}": data.stacked[:, off[m] : off[m + 1]] for m in range(3)}
    np.savez(tmp_path / "views.npz", **views)
    out = tmp_path / "fit.npz"
    code = main(["fit", str(tmp_path / "views.npz"), "--estimator", "convex_fast",
                 "--out", str(out)])
    assert code == 0
    with np.load(out) as z:
        assert str(z["structure"]) == "ABC:1 AB:1 C:1"
        assert z["loadings"].shape == (21, 3)
        assert "gram_ABC" in z.files


def test_non_learner_without_structure_is_an_error():
    with pytest.raises(ValidationError, match="structure must be given"):
        hs.estimators.SchurComplement().fit_covariance(np.eye(4), dims=(2, 2))


def test_candidate_blocks_are_all_subsets_in_canonical_order():
    for m in (1, 2, 3, 4):
        cands = candidate_blocks(m)
        assert len(cands) == 2**m - 1
        assert list(cands) == list(hs.Structure(m, cands, (1,) * len(cands)).blocks)
    assert set(candidate_blocks(3)) == {
        frozenset(c) for k in (1, 2, 3) for c in itertools.combinations(range(3), k)
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Layout.build((2, 3), candidate_blocks(2), 0.5)
