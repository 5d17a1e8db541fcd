"""Structure learning on the sample-space path: the covariance path's decisions.

``schur_select``, the fittability check of :func:`learn_structure` and the
block-evidence table read wide views through the reduced covariance of their
row-space scores (module ``hcl_stats.estimators._samples``). Every principal
view-submatrix of ``S - Psi`` then has the reduced eigenpairs plus
``-sigma_m^2`` on the complement, so every count, edge and score must be the
covariance path's, to round-off, and the ``d x d`` matrix is never formed.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.stats
from _paths import fit_both_paths
from hypothesis import event, given, settings
from hypothesis import strategies as st
from strategies import structures_and_dims

import hcl_stats as hs
from hcl_stats import estimators
from hcl_stats._rmt import estimate_noise_var_mp, noise_var_mp_of_spectrum
from hcl_stats.block_evidence import block_evidence
from hcl_stats.estimators import _samples
from hcl_stats.estimators.learn import learn_structure

NUMERIC = ("edge", "spike", "restricted_edge")


def _assert_same_scores(a: dict, b: dict) -> None:
    """Same candidates, ranks and ``k_O``; eigenvalues and edges to 1e-8 relative."""
    assert a.keys() == b.keys()
    for key in a:
        assert a[key]["rank"] == b[key]["rank"], key
        assert a[key]["k_outside"] == b[key]["k_outside"], key
        assert a[key].get("leaked") == b[key].get("leaked"), key
        ea, eb = np.asarray(a[key]["eigenvalues"]), np.asarray(b[key]["eigenvalues"])
        assert ea.shape == eb.shape, key
        scale = max(float(np.max(np.abs(ea))), 1e-300)
        np.testing.assert_allclose(eb, ea, rtol=0, atol=1e-8 * scale, err_msg=key)
        for name in NUMERIC:
            np.testing.assert_allclose(b[key][name], a[key][name], rtol=1e-8, atol=1e-300,
                                       err_msg=f"{key} {name}")




@settings(max_examples=30)
@given(
    design=structures_and_dims(max_views=4, max_blocks=4, max_rank=3),
    widen=st.lists(st.integers(0, 80), min_size=4, max_size=4),
    n_extra=st.integers(0, 30),
    refit=st.sampled_from(["none", "schur", "masked_gradient"]),
    noise=st.sampled_from(["scalar", "per_view"]),
    rule=st.sampled_from(["bound", "sharp"]),
    seed=st.integers(0, 2**16),
)
def test_schur_select_paths_agree(design, widen, n_extra, refit, noise, rule, seed):
    """Same selection, scores, lowered ranks and block Grams on both paths, with
    views on both sides of n (and the eigenvalue lists padded by the complement)."""
    structure, dims = design
    dims = tuple(d + w for d, w in zip(dims, widen, strict=False))
    n = structure.total_rank + 3 + n_extra
    model = hs.HierarchicalFactorModel.random(dims, structure, singular_values=(2.0, 6.0),
                                              rng=seed)
    data = model.sample(n, rng=np.random.default_rng(seed + 1))
    if rule == "sharp":  # it needs one noise variance (per_view is refused)
        noise = "scalar"
    a, b = fit_both_paths(estimators.SchurSelect(refit=refit, noise_rule=noise, rule=rule),
                          data)
    if isinstance(a, type) or isinstance(b, type):  # refused: on both paths alike
        event("refused")
        assert a is b
        return
    event(f"{len(a.structure.blocks)} block(s) selected")
    assert b.diagnostics.extra["path"] == "samples"
    ea, eb = a.diagnostics.extra, b.diagnostics.extra
    assert (a.structure, ea["selected_structure"], ea["fittable_changes"]) == (
        b.structure, eb["selected_structure"], eb["fittable_changes"])
    _assert_same_scores(ea["selection_scores"], eb["selection_scores"])
    np.testing.assert_allclose(eb["selection_noise_var"], ea["selection_noise_var"],
                               rtol=1e-10)
    ga, gb = a.loadings @ a.loadings.T, b.loadings @ b.loadings.T
    assert np.linalg.norm(ga - gb) <= 1e-8 * max(np.linalg.norm(ga), 1e-8 * np.trace(ga) + 1e-300)


def test_complement_eigenvalues_enter_the_scores(rng):
    """n = 6 with views of 40 and 50 columns: each reduced block has 5 eigenvalues,
    the covariance path lists up to 12, the rest being -sigma_m^2 (per view)."""
    model = hs.HierarchicalFactorModel.random((3, 40, 50), "ABC:1", singular_values=(3.0, 6.0),
                                              rng=rng)
    data = model.sample(6, rng=rng)
    a, b = fit_both_paths(estimators.SchurSelect(refit="none", noise_rule="per_view", tw=0.0,
                                              margin=0.0), data)
    if isinstance(a, type):  # nothing above the edge: both refuse alike
        assert a is b
        return
    sa, sb = a.diagnostics.extra["selection_scores"], b.diagnostics.extra["selection_scores"]
    _assert_same_scores(sa, sb)
    noise = np.asarray(a.diagnostics.extra["selection_noise_var"])
    # the B block's list reaches past its 5 reduced eigenvalues only if r_B + 2 > 5
    assert np.all(np.asarray(sb["C"]["eigenvalues"]) >= -noise[2] - 1e-12)


@pytest.mark.parametrize(("dims", "structure", "n"), [((60, 200), "AB:14", 100),
                                                    ((26, 125, 125), "ABC:9 C:4 BC:2", 25)])
def test_ranks_above_twelve_are_recounted_alike(dims, structure, n, rng):
    """A block with more than 12 eigenvalues above its edge: both paths recount with
    every eigenvalue and list r + 1 of them (a review found the sample path cut
    the list at 12 and fail)."""
    model = hs.HierarchicalFactorModel.random(dims, structure, singular_values=(6.0, 10.0),
                                              rng=rng)
    data = model.sample(n, rng=rng)
    a, b = fit_both_paths(estimators.SchurSelect(refit="none"), data)
    if isinstance(a, type):
        assert a is b
        return
    scores = a.diagnostics.extra["selection_scores"]
    _assert_same_scores(scores, b.diagnostics.extra["selection_scores"])
    assert a.structure == b.structure
    if structure == "AB:14":  # past 12 for seeds 0-99
        assert max(v["rank"] for v in scores.values()) > 12


def test_noise_rule_from_the_spectrum_is_the_covariance_rule(rng):
    x = rng.standard_normal((50, 80)) @ np.diag(np.linspace(0.5, 2.0, 80))
    cov = np.cov(x, rowvar=False)
    assert noise_var_mp_of_spectrum(np.linalg.eigvalsh(cov), 50) == estimate_noise_var_mp(cov, 50)
    # the n x n route: the reduced spectrum plus zeros is the full one
    y = x - x.mean(axis=0)
    small = np.linalg.eigvalsh(y @ y.T / 49)
    full = np.concatenate([small, np.zeros(30)])
    assert noise_var_mp_of_spectrum(full, 50) == pytest.approx(estimate_noise_var_mp(cov, 50),
                                                               rel=1e-10)


def _wide(rng):
    """Views B and C wider than n = 80, A narrower."""
    model = hs.HierarchicalFactorModel.random((30, 100, 120), "ABC:2 BC:1 C:1",
                                              singular_values=(5.0, 10.0), rng=rng)
    return model.sample(80, rng=rng)


def test_learn_structure_never_forms_the_covariance_of_wide_views(rng, monkeypatch):
    """learn_structure (the CLI's default learner and its fittability check) and the
    evidence table on wide views: the covariance path's results, no d x d matrix."""
    data = _wide(rng)
    with monkeypatch.context() as m:  # no view counts as wide: the covariance path
        m.setattr(_samples, "samples_pay_off", lambda dims, n: False)
        m.setattr("hcl_stats.estimators._base.samples_pay_off", lambda dims, n: False)
        sa, ea = _learn_and_evidence(data)
    with monkeypatch.context() as m:
        def refuse(*args, **kwargs):
            raise AssertionError("the d x d covariance was formed")

        m.setattr("hcl_stats.missing.pairwise_covariance", refuse)
        m.setattr("hcl_stats.streaming.streaming_cov", refuse)
        m.setattr("hcl_stats.estimators._base.streaming_cov", refuse)
        sb, eb = _learn_and_evidence(data)
    assert len(sa.structure.blocks) >= 2  # a non-trivial selection (seeds 0-99)
    assert (sa.structure, sa.selected, sa.changes) == (sb.structure, sb.selected, sb.changes)
    _assert_same_scores(sa.scores, sb.scores)
    assert ea.noise_var == pytest.approx(eb.noise_var, rel=1e-10)
    for ra, rb in zip(ea.rows, eb.rows, strict=True):
        assert (ra.name, ra.n_above, ra.fitted_rank) == (rb.name, rb.n_above, rb.fitted_rank)
        assert rb.signal == pytest.approx(ra.signal, rel=1e-8, abs=1e-12)
        assert rb.statistic == pytest.approx(ra.statistic, rel=1e-8)
        assert rb.edge == pytest.approx(ra.edge, rel=1e-10)


def test_fit_views_on_wide_views_forms_no_covariance_until_asked(rng, monkeypatch):
    """fit_views (learned structure) and its variance shares on wide views: no d x d
    matrix; the shares equal variance_explained's from the covariance, which
    ViewsFit.covariance() forms on demand (ViewsFit.cov is None)."""
    from hcl_stats.workflow import fit_views, variance_explained

    data = _wide(rng)
    with monkeypatch.context() as m, warnings.catch_warnings():
        warnings.simplefilter("ignore")

        def refuse(*args, **kwargs):
            raise AssertionError("the d x d covariance was formed")

        m.setattr("hcl_stats.workflow.pairwise_covariance", refuse)
        m.setattr("hcl_stats.missing.pairwise_covariance", refuse)
        m.setattr("hcl_stats.streaming.streaming_cov", refuse)
        m.setattr("hcl_stats.estimators._base.streaming_cov", refuse)
        vf = fit_views(data, estimator="masked_shrink", rng=0)
        shares = vf.variance_explained()
    assert vf.cov is None
    np.testing.assert_array_equal(vf.n_per_block, np.full((3, 3), data.n_samples))
    cov = vf.covariance()
    np.testing.assert_allclose(cov, vf.data.sample_cov(), rtol=0, atol=1e-12)
    ref = variance_explained(vf.fit, cov, vf.view_names)
    assert shares.rows == ref.rows
    np.testing.assert_allclose(shares.values, ref.values, rtol=1e-10)


def test_fit_views_keeps_the_smaller_of_the_views_and_their_covariance(rng):
    """Tall views (d <= n): ViewsFit holds the covariance, not the n x d data; wide
    views: the data, and no covariance however it is copied, replaced or pickled."""
    import dataclasses
    import pickle

    from hcl_stats.workflow import ViewsFit, fit_views

    model = hs.HierarchicalFactorModel.random((4, 5, 6), "ABC:1 A:1", rng=rng)
    data = model.sample(3000, rng=rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vf = fit_views(data, structure="ABC:1 A:1", estimator="schur", rng=0)
        wide = fit_views(_wide(rng), estimator="masked_shrink", rng=0)
    assert vf.data is None
    np.testing.assert_allclose(vf.cov, vf.preprocessor.transform(data).sample_cov(), atol=1e-12)
    assert len(pickle.dumps(vf)) < 3000 * 15 * 8  # smaller than the data alone
    for same in (ViewsFit(vf.fit, vf.preprocessor, vf.selection, vf.cov, vf.n_per_block,
                          vf.view_names, vf.extra),
                 ViewsFit(vf.fit, vf.preprocessor, vf.selection, cov=vf.cov,
                          n_per_block=vf.n_per_block, view_names=vf.view_names),
                 dataclasses.replace(vf, extra={"note": 1})):
        assert same.cov is vf.cov
        np.testing.assert_array_equal(same.variance_explained().values,
                                      vf.variance_explained().values)
    size = len(pickle.dumps(wide))
    assert wide.covariance().shape == (250, 250)
    assert wide.cov is None
    assert len(pickle.dumps(wide)) == size
    assert dataclasses.replace(wide, extra={}).covariance().shape == (250, 250)
    with pytest.raises(hs.exceptions.ValidationError, match="data must be the complete"):
        ViewsFit(vf.fit, vf.preprocessor, None, vf.cov, vf.n_per_block, vf.view_names,
                 data=np.zeros((3, 15)))
    with pytest.raises(hs.exceptions.ValidationError, match="needs cov"):
        ViewsFit(vf.fit, vf.preprocessor, None, None, vf.n_per_block, vf.view_names)


def test_null_draws_of_wide_views_form_no_covariance(rng, monkeypatch):
    """The block test's null draws on wide views are drawn in factor form and reduced:
    no d x d matrix, and the strong blocks of the fit beat every draw."""
    from hcl_stats import block_evidence as be

    data = _wide(rng)
    fit = estimators.SchurComplement().fit(data, structure="ABC:2 BC:1 C:1")
    with monkeypatch.context() as m, warnings.catch_warnings():
        warnings.simplefilter("ignore")

        def refuse(*args, **kwargs):
            raise AssertionError("a d x d matrix was formed")

        for name in ("_null_cov", "_draw_cov"):
            m.setattr(be, name, refuse)
        m.setattr("hcl_stats.streaming.streaming_cov", refuse)
        ev = be.block_evidence(data, fit, n_null=19, rng=rng)
    for name in ("ABC", "BC", "C"):
        assert ev.row(name).p_value == pytest.approx(1 / 20)


def test_null_draws_in_factor_form_have_the_null_distribution(rng):
    """Factor-form draws (wide views) and covariance draws of the same null model give
    the same distribution of every block statistic: two-sample Kolmogorov-Smirnov
    distance at most 0.425 over 80 + 80 draws, the critical value at level 1e-6
    (``sqrt(-log(1e-6 / 2) / 2) sqrt(2 / 80)``). Some statistics are bimodal (a
    block of the null is, or is not, conditioned out), so medians are not compared."""
    from hcl_stats import block_evidence as be
    from hcl_stats.estimators.selection import schur_scores
    from hcl_stats.structure import format_block

    # noise variance 4, far from 1: a variance used as a standard deviation shows
    model = hs.HierarchicalFactorModel.random((10, 40, 50), "ABC:1 BC:1 C:1", noise_var=4.0,
                                              singular_values=(6.0, 12.0), rng=rng)
    data = model.sample(30, rng=rng)  # B and C wider than n
    n, dims = data.n_samples, data.dims
    fit = estimators.SchurComplement().fit(data, structure=model.structure)
    noise = np.repeat(np.asarray(fit.noise_var, dtype=float) * np.ones(3), dims)
    cands = be._candidates(3, 8)
    keys = [format_block(b) for b in cands]
    stats = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for reduced in (False, True):
            draw = be._null_sampler(np.asarray(fit.loadings), noise,
                                    fit.structure.columns(frozenset({1, 2})), dims, n, reduced)
            g = np.random.default_rng(rng.integers(2**32))
            rows = []
            for _ in range(80):
                cov, cov_dims, full = draw(g)
                assert cov.shape[0] == (sum(dims) if not reduced else 10 + 29 + 29)
                sc, s2 = schur_scores(cov, cov_dims, n, candidates=cands, full_dims=full)
                rows.append(be._statistics(sc, s2, keys))
            stats[reduced] = np.array(rows)
    ks = [float(scipy.stats.ks_2samp(stats[False][:, j], stats[True][:, j]).statistic)
          for j in range(len(keys))]
    assert max(ks) <= 0.425, dict(zip(keys, ks, strict=True))


def _learn_and_evidence(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        learned = learn_structure(data)
        fit = estimators.SchurComplement().fit(data, structure=learned.structure)
        return learned, block_evidence(data, fit, n_null=0)


@pytest.mark.parametrize("select", ["eigen", "correlation"])
def test_rank_counting_learners_warn_before_forming_the_covariance(select, rng, monkeypatch):
    """eigen and correlation read the d x d covariance: on wide views (d at or above
    WIDE_COVARIANCE_WARN) they say so, and point at the default learner; the
    default learner does not warn."""
    from hcl_stats.exceptions import CostWarning

    monkeypatch.setattr(_samples, "WIDE_COVARIANCE_WARN", 200)
    data = _wide(rng)  # d = 250 > n = 80
    with pytest.warns(CostWarning, match=rf"select='{select}' has no sample-space path.*"
                                         r"select='schur_select' \(the default\)") as caught:
        learn_structure(data, select)
    assert {w.filename for w in caught if w.category is CostWarning} == {__file__}
    with warnings.catch_warnings():
        warnings.simplefilter("error", CostWarning)
        learn_structure(data)
        monkeypatch.setattr(_samples, "WIDE_COVARIANCE_WARN", 251)
        learn_structure(data, select)


def test_selection_frequency_on_wide_views_never_forms_the_covariance(rng, monkeypatch):
    """Bootstrap resamples of wide views: schur_select on the sample path, told the
    effective size n // 2, counts the blocks and ranks the covariance path counts."""
    from hcl_stats.block_evidence import selection_frequency

    data = _wide(rng)
    with monkeypatch.context() as m:  # no view counts as wide: the covariance path
        m.setattr(_samples, "samples_pay_off", lambda dims, n: False)
        m.setattr("hcl_stats.estimators._base.samples_pay_off", lambda dims, n: False)
        ref = selection_frequency(data, n_boot=4, rng=7)
    with monkeypatch.context() as m:
        def refuse(*args, **kwargs):
            raise AssertionError("the d x d covariance was formed")

        m.setattr("hcl_stats.streaming.streaming_cov", refuse)
        m.setattr("hcl_stats.estimators._base.streaming_cov", refuse)
        got = selection_frequency(data, n_boot=4, rng=7)
    assert (got.blocks, got.rank_counts, got.failures) == (ref.blocks, ref.rank_counts,
                                                           ref.failures)
    assert ref.failures < 4


@pytest.mark.parametrize("path", ["covariance", "samples"])
def test_n_effective_is_the_sample_size_of_the_rules(path, rng):
    """fit(views, n_effective=k) is fit_covariance(S, n_samples=k): only the rules
    that read n change (here the learner's edges and noise)."""
    data = _wide(rng)
    est = estimators.SchurSelect(refit="none")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = est.fit(data, n_effective=30, path=path)
        b = est.fit_covariance(data.sample_cov(), dims=data.dims, n_samples=30)
    assert a.structure == b.structure
    _assert_same_scores(b.diagnostics.extra["selection_scores"],
                        a.diagnostics.extra["selection_scores"])
    with pytest.raises(hs.exceptions.ValidationError, match="n_effective must be"):
        est.fit(data, n_effective=1)


@pytest.mark.parametrize("refit", ["none", "schur"])
def test_convex_fast_solves_the_reduced_program(refit, rng):
    """The convex program's solution lies in the views' row spaces, so convex_fast
    on the reduced covariance finds the covariance path's solution (to the solver's
    tolerance), its support and ranks, and the same objective (with the complement's
    constant)."""
    model = hs.HierarchicalFactorModel.random((30, 100, 140), "ABC:2 AB:1 C:2",
                                              singular_values=(5.0, 10.0), rng=rng)
    data = model.sample(60, rng=rng)
    a, b = fit_both_paths(estimators.ConvexFast(refit=refit), data)
    if isinstance(a, type):
        assert a is b
        return
    assert b.diagnostics.extra["path"] == "samples"
    ea, eb = a.diagnostics.extra, b.diagnostics.extra
    assert (a.structure, ea["selection_scores"]["convex_support"]) == (
        b.structure, eb["selection_scores"]["convex_support"])
    assert eb["penalty"] == pytest.approx(ea["penalty"], rel=1e-12)
    _assert_same_scores(ea["selection_scores"]["schur"], eb["selection_scores"]["schur"])
    ga, gb = a.loadings @ a.loadings.T, b.loadings @ b.loadings.T
    # refit 'none' keeps the solver's factors (tolerance 1e-7 on the relative gap)
    tol = 1e-8 if refit == "schur" else 1e-4
    assert np.linalg.norm(ga - gb) <= tol * np.linalg.norm(ga)
    if refit == "none":
        assert b.diagnostics.objective == pytest.approx(a.diagnostics.objective, rel=1e-8)


@pytest.mark.parametrize("name", ["schur_select", "convex_fast"])
def test_extreme_scales_rescale_alike_onfit_both_paths(name, rng):
    """Variances of 1e40: both paths rescale by the same power of two (the data's
    largest variance, not the reduced scores'), so penalties and scores agree."""
    data = hs.MultimodalData([x * 1e20 for x in _wide(rng).Xs])
    a, b = fit_both_paths(estimators.get(name)(refit="none"), data)
    if isinstance(a, type):
        assert a is b
        return
    ea, eb = a.diagnostics.extra, b.diagnostics.extra
    assert ea["magnitude_exponent"] == eb["magnitude_exponent"] != 0
    assert a.structure == b.structure
    scores_a, scores_b = ea["selection_scores"], eb["selection_scores"]
    if name == "convex_fast":
        assert eb["penalty"] == pytest.approx(ea["penalty"], rel=1e-10)
        scores_a, scores_b = scores_a["schur"], scores_b["schur"]
    _assert_same_scores(scores_a, scores_b)


def test_subsamples_of_wide_views_stay_on_the_sample_path(rng, monkeypatch):
    """n = 60 rows of 175 columns: not wide enough for the sample path at n, but a
    subsample of 30 rows is; no d x d covariance is formed for it."""
    from hcl_stats.block_evidence import selection_frequency

    model = hs.HierarchicalFactorModel.random((50, 55, 70), "ABC:2 C:1",
                                              singular_values=(5.0, 10.0), rng=rng)
    data = model.sample(60, rng=rng)
    assert not _samples.samples_pay_off(data.dims, 60)
    assert _samples.samples_pay_off(data.dims, 30)

    def refuse(*args, **kwargs):
        raise AssertionError("the d x d covariance was formed")

    monkeypatch.setattr("hcl_stats.streaming.streaming_cov", refuse)
    freq = selection_frequency(data, n_boot=3, resample="subsample", rng=1)
    assert freq.failures < 3


def test_learn_and_fit_takes_n_effective_with_a_structure(rng):
    data = _wide(rng)
    est = estimators.get("learn")(refit="schur")
    fit = est.fit(data, structure="ABC:2 C:1", n_effective=50)
    ref = estimators.SchurComplement().fit(data, structure="ABC:2 C:1", n_effective=50)
    np.testing.assert_array_equal(fit.loadings, ref.loadings)
    assert fit.n_samples == 50
    with pytest.raises(hs.exceptions.ValidationError, match="n_effective applies to a given"):
        est.fit(data, n_effective=50)
