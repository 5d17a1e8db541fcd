"""Numerical edge cases (issue 9, parts 2 and 4).

* near-unidentifiable settings warn with the condition number instead of returning
  silent garbage, and well-conditioned settings stay silent (pytest turns every
  unexpected warning into an error);
* n << d, float32 input, views on scales from 1e-6 to 1e6 (exact equivariance:
  scaling a view by c scales its loadings by c), M up to 6 (63 blocks);
* non-convergence of the MaskedGradient refinement is surfaced as a
  ConvergenceWarning and in the diagnostics and the summary.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import replace

import numpy as np
import pytest

from hcl_stats import HierarchicalFactorModel, Structure, check_identifiable
from hcl_stats.estimators import MaskedGradient, NaivePCA, SchurComplement
from hcl_stats.exceptions import ConvergenceWarning, NumericalWarning
from hcl_stats.metrics import structure_gram_errors

S3 = "ABC:1 AB:1 BC:1 A:1 B:1 C:1"


def _model(singular_values=(0.5, 1.5), noise_var=(0.5, 1.0, 2.0), rng=0, dims=(4, 5, 6)):
    return HierarchicalFactorModel.random(
        dims, S3, noise_var=np.asarray(noise_var), singular_values=singular_values, rng=rng
    )


def _cond_from(message: str) -> float:
    match = re.search(r"condition number (\S+) >", message)
    assert match, message
    return float(match.group(1))


# ------------------------------------------------------- near-unidentifiable
def test_well_conditioned_population_fit_is_silent_and_exact(global_seed):
    model = _model(rng=global_seed)
    for est in (SchurComplement(noise_rule="per_view"), MaskedGradient(noise_rule="per_view")):
        fit = est.fit_covariance(model.covariance(), dims=model.dims, structure=model.structure)
        assert fit.diagnostics.warnings == ()
        assert max(structure_gram_errors(fit, model, relative=True).values()) < 1e-7


@pytest.mark.parametrize("tiny", [1e-5, 1e-7])
def test_tiny_block_singular_values_warn_with_condition_number(global_seed, tiny):
    model = _model(rng=global_seed)
    w = np.array(model.loadings)
    cols = model.structure.columns({1})  # the specific block of view B
    w[:, cols] *= tiny
    weak = HierarchicalFactorModel(model.dims, model.structure, w, model.noise_var)
    with pytest.warns(NumericalWarning) as rec:
        fit = SchurComplement(noise_rule="per_view").fit_covariance(
            weak.covariance(), dims=weak.dims, structure=weak.structure
        )
    # at tiny = 1e-7 block B's gram is ~1e-14 of ||Sigma||, i.e. at float64
    # rounding, so its Schur complement may also (justly) have no positive
    # eigenvalue (seed 8: -2.7e-16); any other warning is a failure
    messages = [str(r.message) for r in rec]
    assert all("condition number" in m or "eigenvalues are positive" in m
               for m in messages), messages
    conds = [_cond_from(str(r.message)) for r in rec if "condition number" in str(r.message)]
    assert min(conds) > 1e8
    # the condition number scales like 1 / tiny^2 (an eigenvalue of W W^T)
    assert max(conds) > 0.1 / tiny**2
    # the warnings are recorded in the result, and the estimate has no NaN
    assert any("condition number" in m for m in fit.diagnostics.warnings)
    assert np.all(np.isfinite(fit.loadings))


def test_rank_deficient_outside_views_warn(global_seed):
    # the loadings of view C on its two blocks are (numerically) collinear, so the
    # rank-k_O truncated inverse used to isolate block AB is singular
    model = _model(rng=global_seed)
    w = np.array(model.loadings)
    rows = model.row_slice(2)
    c_bc, c_c = model.structure.columns({1, 2}), model.structure.columns({2})
    w[rows, c_c] = w[rows, c_bc] * (1 + 1e-9)
    w[rows, model.structure.columns({0, 1, 2})] = 2.0 * w[rows, c_bc]
    bad = HierarchicalFactorModel(model.dims, model.structure, w, model.noise_var)
    report = check_identifiable(bad)
    # still identified (the Jacobian at this point has full rank), but the Schur
    # route's numerical rank check fails, so Schur is not named as exact
    assert not {c.name: c.holds for c in report.conditions}["schur_matching"]
    assert "schur" not in report.exact_estimators
    with pytest.warns(NumericalWarning, match=r"truncated inverse .* condition number"):
        SchurComplement(noise_rule="per_view").fit_covariance(
            bad.covariance(), dims=bad.dims, structure=bad.structure
        )


def test_noise_above_signal_warns_about_zero_columns(global_seed):
    model = _model(rng=global_seed, noise_var=1.0)
    with pytest.warns(NumericalWarning, match=r"only 0 of the top 6 eigenvalues are positive") as rec:
        fit = NaivePCA(noise_rule=1e3).fit_covariance(
            model.covariance(), dims=model.dims, structure=model.structure
        )
    assert len(rec) >= 1
    np.testing.assert_array_equal(fit.loadings, 0.0)


def test_a_one_entry_noise_tuple_gets_the_length_message_not_the_range_one(global_seed):
    from hcl_stats.exceptions import ValidationError

    data = _model(rng=global_seed, noise_var=1.0).sample(60, rng=global_seed)
    with pytest.raises(ValidationError, match=r"one entry per view \(3\); got 1 entries"):
        SchurComplement(noise_rule=(1e-200,)).fit(data, structure="all:1")


@pytest.mark.parametrize("noise", [1e308, 1e-200, (1.0, 1e-200, 1.0)])
def test_known_noise_beyond_1e100_of_the_variances_is_refused(global_seed, noise):
    """Found by a hostile-input review: 1e308 gave a bare ValueError about NaNs and
    1e-200 a SolverError from MaskedShrink; both are now a typed error naming it."""
    from hcl_stats.estimators import MaskedShrink
    from hcl_stats.exceptions import ValidationError

    data = _model(rng=global_seed, noise_var=1.0).sample(60, rng=global_seed)
    where = r"\[1\]" if isinstance(noise, tuple) else ""
    for est in (MaskedShrink(noise_rule=noise), SchurComplement(noise_rule=noise)):
        with pytest.raises(ValidationError,
                           match=rf"noise_rule{where} \(a known sigma\^2; --noise .* within a "
                                 r"factor 1e100 of the average variance of view"):
            est.fit(data, structure="all:1")


def test_a_tiny_known_noise_is_the_noiseless_fit(global_seed):
    """sigma^2 = 1e-90 v and 1e-16 v give the same fit: to round-off for the closed
    form, to the stopping tolerance (relative gradient 1e-7) for the refinement."""
    from hcl_stats.estimators import MaskedShrink

    data = _model(rng=global_seed, noise_var=1.0).sample(400, rng=global_seed)
    v = min(float(np.mean(np.var(x, axis=0, ddof=1))) for x in data.Xs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumericalWarning)
        for est, rel in ((SchurComplement, 1e-10), (MaskedShrink, 1e-4)):
            a = est(noise_rule=1e-90 * v).fit(data, structure="all:1").loadings
            b = est(noise_rule=1e-16 * v).fit(data, structure="all:1").loadings
            ga, gb = a @ a.T, b @ b.T
            assert np.linalg.norm(ga - gb) <= rel * np.linalg.norm(gb)


def test_scalar_noise_with_wildly_different_view_scales_warns(global_seed):
    model = _model(rng=global_seed, noise_var=1.0)
    d = np.repeat([1e-3, 1.0, 1e3], model.dims)
    cov = model.covariance() * np.outer(d, d)
    with pytest.warns(NumericalWarning) as rec:
        fit = SchurComplement().fit_covariance(cov, dims=model.dims, structure=model.structure)
    messages = [str(r.message) for r in rec]
    assert any(re.match(r"the average variances of the views differ by a factor \d(\.\d+)?e\+1[12] ", m)
               for m in messages), messages
    assert any("average variances" in m for m in fit.diagnostics.warnings)


# ------------------------------------------------------------- scale equivariance
def _scaled_views(data, factors):
    return [x * c for x, c in zip(data.Xs, factors, strict=True)]


@pytest.mark.parametrize("factors", [(1e-6, 1.0, 1e6), (1e6, 1e-6, 1.0), (1e3, 1e3, 1e-3)])
@pytest.mark.parametrize("est", [SchurComplement(noise_rule="per_view"),
                                 MaskedGradient(noise_rule="per_view")])
def test_per_view_scaling_scales_loadings_exactly(global_seed, factors, est):
    model = _model(rng=global_seed)
    data = model.sample(200, rng=global_seed)
    base = est.fit(data, structure=model.structure)
    scaled = est.fit(_scaled_views(data, factors), structure=model.structure)
    rows = np.repeat(factors, model.dims)
    # W_hat(c_m X_m) = c_m W_hat(X_m), noise c_m^2 sigma_m^2, to round-off
    np.testing.assert_allclose(scaled.loadings / rows[:, None], base.loadings,
                               rtol=1e-7, atol=1e-7 * np.max(np.abs(base.loadings)))
    np.testing.assert_allclose(np.asarray(scaled.noise_var) / np.square(factors),
                               base.noise_var, rtol=1e-8)


@pytest.mark.parametrize("c", [1e-6, 1e6])
@pytest.mark.parametrize("est", [NaivePCA(), SchurComplement(), MaskedGradient(),
                                 SchurComplement(noise_rule="per_view")])
def test_global_scaling_scales_loadings(global_seed, c, est):
    model = _model(rng=global_seed, noise_var=1.0)
    data = model.sample(200, rng=global_seed)
    base = est.fit(data, structure=model.structure)
    scaled = est.fit(_scaled_views(data, (c, c, c)), structure=model.structure)
    assert np.all(np.isfinite(scaled.loadings))
    g0 = base.loadings @ base.loadings.T
    g1 = scaled.loadings @ scaled.loadings.T / c**2
    assert np.linalg.norm(g1 - g0) <= 1e-7 * np.linalg.norm(g0)


def test_population_equivariance_at_extreme_scales(global_seed):
    model = _model(rng=global_seed)
    d = np.repeat([1e-6, 1.0, 1e6], model.dims)
    cov = model.covariance() * np.outer(d, d)
    fit = MaskedGradient(noise_rule="per_view").fit_covariance(
        cov, dims=model.dims, structure=model.structure
    )
    unscaled = fit.loadings / d[:, None]
    truth = np.asarray(model.loadings)
    for b in model.structure.blocks:
        cols = model.structure.columns(b)
        ge, gt = unscaled[:, cols] @ unscaled[:, cols].T, truth[:, cols] @ truth[:, cols].T
        assert np.linalg.norm(ge - gt) <= 1e-7 * np.linalg.norm(gt)


# ------------------------------------------------------------- n << d, float32
def test_n_much_smaller_than_d_gives_finite_estimate(global_seed):
    model = HierarchicalFactorModel.random(
        (150, 150), "AB:1 A:1 B:1", noise_var=1.0, singular_values=(5.0, 8.0), rng=global_seed
    )
    data = model.sample(12, rng=global_seed)  # n = 12 << d = 300, n >= K + 2 = 5
    for est in (NaivePCA(), SchurComplement(), MaskedGradient(max_iter=200)):
        with _no_warning_except(ConvergenceWarning):
            fit = est.fit(data, structure=model.structure)
        assert np.all(np.isfinite(fit.loadings))
        assert 0 < fit.noise_var < 1.0  # biased down (Marchenko-Pastur), documented
        assert np.linalg.matrix_rank(fit.loadings) <= model.total_rank


class _no_warning_except:
    """Allow only the given warning category (recorded, not raised)."""

    def __init__(self, category):
        self.category = category

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", self.category)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def test_float32_views_equal_fit_on_their_float64_cast(global_seed):
    # signal well above the noise edge: with singular values down to 0.5 and
    # n = 300, view A (d = 4, three blocks) can show only 2 signal eigenvalues
    # in S_W (seed 66), and the truncated-inverse NumericalWarning is justified
    model = _model(singular_values=(1.0, 1.5), rng=global_seed, noise_var=1.0)
    data = model.sample(3000, rng=global_seed)
    x32 = [x.astype(np.float32) for x in data.Xs]
    fit32 = SchurComplement().fit(x32, structure=model.structure)
    fit64 = SchurComplement().fit([x.astype(np.float64) for x in x32], structure=model.structure)
    assert fit32.loadings.dtype == np.float64
    np.testing.assert_array_equal(fit32.loadings, fit64.loadings)
    # and float32 rounding moves the estimate by about float32 eps only
    full = SchurComplement().fit(data, structure=model.structure)
    g32, g = fit32.loadings @ fit32.loadings.T, full.loadings @ full.loadings.T
    assert np.linalg.norm(g32 - g) <= 1e-4 * np.linalg.norm(g)


# -------------------------------------------------------------------- M up to 6
def test_six_views_all_63_blocks_population_exact():
    structure = Structure.all_subsets(6, rank=1)
    assert len(structure) == 63
    dims = tuple(structure.view_rank(m) + 2 for m in range(6))  # 34 each, d = 204
    assert check_identifiable(structure, dims=dims)
    model = HierarchicalFactorModel.random(dims, structure, noise_var=1.0, rng=3)
    fit = SchurComplement().fit_covariance(model.covariance(), dims=dims, structure=structure)
    errors = structure_gram_errors(fit, model, relative=True)
    assert len(errors) == 63
    assert max(errors.values()) < 1e-6


# ------------------------------------------------------------ solver faults
def test_masked_gradient_non_convergence_is_surfaced(global_seed):
    model = _model(rng=global_seed, noise_var=1.0)
    data = model.sample(100, rng=global_seed)
    init = SchurComplement().fit(data, structure=model.structure)
    mask = model.structure.mask(model.dims)
    bad_init = replace(init, loadings=init.loadings + 0.5 * mask)  # far from optimum
    with pytest.warns(ConvergenceWarning, match=r"MaskedGradient stopped after 1 iterations .* relative gradient .* > tol"):
        fit = MaskedGradient(max_iter=1, tol=1e-12).fit(data, structure=model.structure, init=bad_init)
    diag = fit.diagnostics
    assert diag.converged is False
    assert diag.n_iter == 1
    assert diag.relative_gradient > 1e-12
    assert any(w.startswith("ConvergenceWarning") for w in diag.warnings)
    assert "False" in str(fit.summary())
    assert np.all(np.isfinite(fit.loadings))


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("c", [1e-160, 1e-170, 1e-300])
def test_views_below_the_float64_floor_are_refused(global_seed, c, sparse):
    """Entries whose squares are subnormal: a typed error, not a wrong estimate.

    At 1e-160 the covariance is subnormal (block Grams wrong by 5e-4, silently); at
    1e-170 it is zero. Only the view's magnitude decides, dense or sparse.
    """
    import scipy.sparse

    from hcl_stats.estimators import MaskedShrink
    from hcl_stats.exceptions import ValidationError

    data = _model(rng=global_seed, noise_var=1.0).sample(50, rng=global_seed)
    views = [x * c for x in data.Xs]
    views[1] = views[1] * 0.5  # a different largest entry in each view
    if sparse:
        views[1] = scipy.sparse.csr_matrix(views[1])
    for est in (MaskedShrink(), SchurComplement()):
        with pytest.raises(ValidationError,
                           match=r"views\[0\] must have a largest entry >= 1e-152 .* Rescale"):
            est.fit(views, structure="all:1", path="samples" if sparse else "auto")
    # just above the floor the fit runs and scales exactly (see the next test)
    views = [x * (1e-152 / np.max(np.abs(x))) for x in data.Xs]
    with warnings.catch_warnings():  # a weak Schur step may warn on some seeds
        warnings.simplefilter("ignore", NumericalWarning)
        assert np.all(np.isfinite(SchurComplement().fit(views, structure="all:1").loadings))


def test_sparse_integers_beyond_2_53_get_the_dense_message():
    import scipy.sparse

    from hcl_stats.estimators import MaskedShrink
    from hcl_stats.exceptions import ValidationError

    x = scipy.sparse.csr_matrix(np.array([[1, 2**53 + 2], [3, 4], [5, 7]], dtype=np.int64))
    y = np.arange(6.0).reshape(3, 2) ** 2
    with pytest.raises(ValidationError, match=r"integer entries of magnitude <= 2\*\*53"):
        MaskedShrink().fit([x, y], structure="AB:1")


@pytest.mark.parametrize("c", [1e-150, 1e150])
@pytest.mark.parametrize("est", [NaivePCA(), SchurComplement(), MaskedGradient(),
                                 SchurComplement(noise_rule="per_view")])
def test_extreme_global_scales_are_exactly_equivariant(global_seed, c, est):
    # beyond [1e-30, 1e30] the fit runs on data rescaled by a power of two, so
    # squares neither overflow nor underflow; found by fuzzing (1e150 overflowed)
    model = _model(rng=global_seed, noise_var=1.0)
    data = model.sample(100, rng=global_seed)
    base = est.fit(data, structure=model.structure)
    scaled = est.fit(_scaled_views(data, (c, c, c)), structure=model.structure)
    assert scaled.diagnostics.extra["magnitude_exponent"] % 2 == 0
    w = scaled.loadings / c
    g0 = base.loadings @ base.loadings.T
    assert np.linalg.norm(w @ w.T - g0) <= 1e-12 * np.linalg.norm(g0)
    np.testing.assert_allclose(np.asarray(scaled.noise_var) / c**2, base.noise_var, rtol=1e-12)


def test_top_eigh_survives_a_subset_driver_that_returns_too_few(monkeypatch, global_seed):
    """LAPACK's dsyevr returned 0 of 2 requested eigenpairs of a finite 20 x 20
    matrix (entries 1e-300 beside order-1 ones; an IndexError in the Schur start).
    top_eigh then takes all eigenpairs from the full driver, or, when it may not
    keep the matrix (overwrite=True), raises a SolverError that says why."""
    import scipy.linalg

    from hcl_stats._linalg import top_eigh
    from hcl_stats.exceptions import SolverError

    a = np.random.default_rng(global_seed).standard_normal((6, 6))
    a = a + a.T
    want_vals, want_vecs = top_eigh(a.copy(), 2)
    real = scipy.linalg.eigh

    def flaky(m, *args, **kwargs):
        if "subset_by_index" in kwargs:
            return np.zeros(0), np.zeros((m.shape[0], 0))
        return real(m, *args, **kwargs)

    monkeypatch.setattr(scipy.linalg, "eigh", flaky)
    vals, vecs = top_eigh(a.copy(), 2)
    np.testing.assert_allclose(vals, want_vals, rtol=1e-12)
    np.testing.assert_allclose(np.abs(vecs.T @ want_vecs), np.eye(2), atol=1e-10)
    with pytest.raises(SolverError, match="returned 0 of the top 2 eigenpairs"):
        top_eigh(np.asfortranarray(a.copy()), 2, overwrite=True)
