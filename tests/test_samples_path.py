"""The sample-space path for wide views: agreement with the covariance path.

On the sample path each view wider than ``n`` is replaced by the scores on its
row space and the estimator runs on their covariance (module
``hcl_stats.estimators._samples``). The two paths compute the same estimate in
exact arithmetic, so every block Gram ``W^S W^S^T`` must agree to round-off, on
both sides of ``n = d_m``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
from _paths import fit_both_paths
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import structures_and_dims

import hcl_stats as hs
from hcl_stats import estimators
from hcl_stats._linalg import top_eigh
from hcl_stats.estimators._samples import reduce_views
from hcl_stats.exceptions import ValidationError

# The two paths must agree, including on blocks the shrinkage drops at small n
# (BlockDroppedWarning is the estimator's documented notice, not a failure here).
pytestmark = pytest.mark.filterwarnings("ignore::hcl_stats.exceptions.BlockDroppedWarning")


SAMPLE_PATH = ("naive", "schur", "masked_gradient", "masked_shrink", "pca_shrink",
               "schur_shrink")


def _block_grams(fit):
    off = np.concatenate([[0], np.cumsum(fit.dims)])
    w = np.asarray(fit.loadings)
    out = {}
    for b in fit.structure.blocks:
        rows = np.concatenate([np.arange(off[m], off[m + 1]) for m in sorted(b)])
        wb = w[rows][:, fit.structure.columns(b)]
        out[b] = wb @ wb.T
    return out


def _assert_same_fit(a, b, scale):
    """Every block Gram and the noise variance agree to 1e-8 relative."""
    assert a.structure == b.structure
    assert a.dims == b.dims
    ga, gb = _block_grams(a), _block_grams(b)
    for blk in ga:
        # relative to the Gram, floored at 1e-8 of the data scale (a block shrunk
        # to zero on one path must be zero on the other)
        ref = max(float(np.linalg.norm(ga[blk])), 1e-8 * scale)
        assert float(np.linalg.norm(ga[blk] - gb[blk])) <= 1e-8 * ref, blk
    np.testing.assert_allclose(np.asarray(b.noise_var), np.asarray(a.noise_var),
                               rtol=1e-10)


def _fit_both(est, xs, structure):
    return fit_both_paths(est, xs, structure=structure)


@settings(max_examples=25)
@given(
    design=structures_and_dims(max_views=3, max_blocks=3, max_rank=2),
    widen=st.lists(st.integers(0, 40), min_size=3, max_size=3),
    n_extra=st.integers(0, 40),
    name=st.sampled_from(SAMPLE_PATH),
    noise=st.sampled_from(["scalar", "per_view"]),
    seed=st.integers(0, 2**16),
)
def test_paths_agree_in_every_block_gram(design, widen, n_extra, name, noise, seed):
    structure, dims = design
    dims = tuple(d + w for d, w in zip(dims, widen, strict=False))
    n = structure.total_rank + 2 + n_extra  # n below, at and above the d_m
    model = hs.HierarchicalFactorModel.random(dims, structure, rng=seed)
    data = model.sample(n, rng=np.random.default_rng(seed + 1))
    a, b = _fit_both(estimators.get(name)(noise_rule=noise), data, structure)
    if isinstance(a, type) or isinstance(b, type):  # refused: on both paths alike
        assert a is b
        return
    assert b.diagnostics.extra["path"] == "samples"
    scale = float(np.trace(data.sample_cov()))
    _assert_same_fit(a, b, scale)


@pytest.mark.parametrize("name", SAMPLE_PATH)
def test_wide_views_on_both_sides_of_n(name, rng):
    """d_1 < n < d_2, d_3: views 2 and 3 are reduced to rank n - 1, view 1 kept."""
    model = hs.HierarchicalFactorModel.random((12, 90, 150), "ABC:2 AB:1 C:1", rng=rng)
    data = model.sample(40, rng=rng)
    a, b = _fit_both(estimators.get(name)(), data, model.structure)
    assert b.diagnostics.extra["reduced_dims"] == [12, 39, 39]
    _assert_same_fit(a, b, float(np.trace(data.sample_cov())))
    auto = estimators.get(name)().fit(data, structure=model.structure)
    assert auto.diagnostics.extra["path"] == "samples"
    np.testing.assert_array_equal(auto.loadings, b.loadings)


def test_narrow_views_take_the_covariance_path_by_default(rng):
    model = hs.HierarchicalFactorModel.random((5, 6), "AB:1 B:1", rng=rng)
    fit = estimators.MaskedShrink().fit(model.sample(50, rng=rng), structure=model.structure)
    assert fit.diagnostics.extra["path"] == "covariance"


def test_reduced_covariance_is_the_covariance_in_the_row_space_basis(rng):
    xs = [rng.standard_normal((15, 4)) + 3.0, rng.standard_normal((15, 40))]
    cov, red = reduce_views(xs, 15)
    assert red.dims == (4, 14)  # centring removes one direction of the wide view
    basis = red.basis(1)
    np.testing.assert_allclose(basis.T @ basis, np.eye(14), atol=1e-12)
    q = np.zeros((44, 18))
    q[:4, :4] = np.eye(4)
    q[4:, 4:] = basis
    np.testing.assert_allclose(q @ cov @ q.T, np.cov(np.hstack(xs).T), atol=1e-12)
    w = rng.standard_normal((18, 3))
    np.testing.assert_allclose(red.project(red.lift(w)), w, atol=1e-12)


def _count_svds(monkeypatch):
    calls = []
    svd = scipy.linalg.svd

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return svd(*args, **kwargs)

    monkeypatch.setattr(scipy.linalg, "svd", counting)
    return calls


def test_wide_view_basis_through_the_gram_without_an_svd(rng, monkeypatch):
    """A well-conditioned wide view is reduced through its n x n Gram (no SVD)."""
    calls = _count_svds(monkeypatch)
    xs = [rng.standard_normal((20, 3)), rng.standard_normal((20, 70)) + 5.0]
    cov, red = reduce_views(xs, 20)
    assert calls == []
    assert red.dims == (3, 19)
    basis = red.basis(1)
    np.testing.assert_allclose(basis.T @ basis, np.eye(19), atol=1e-12)
    full = np.cov(np.hstack(xs).T)
    q = scipy.linalg.block_diag(np.eye(3), basis)
    np.testing.assert_allclose(q @ cov @ q.T, full, atol=1e-12 * np.abs(full).max())


def test_ill_conditioned_wide_view_falls_back_to_the_svd(rng, monkeypatch):
    """Singular values over 8 decades: the Gram route would lose orthonormality."""
    calls = _count_svds(monkeypatch)
    n, d = 30, 80
    u = np.linalg.qr(rng.standard_normal((n, n - 1)))[0]
    u -= u.mean(axis=0)  # centred rows, so the spectrum below is the view's
    v = np.linalg.qr(rng.standard_normal((d, n - 1)))[0]
    x = (u * np.logspace(0, -8, n - 1)) @ v.T + 1.0
    cov, red = reduce_views([x], n)
    assert calls == [(n, d)]
    basis = red.basis(0)
    np.testing.assert_allclose(basis.T @ basis, np.eye(red.dims[0]), atol=1e-12)
    full = np.cov(x.T)
    np.testing.assert_allclose(basis @ cov @ basis.T, full, atol=1e-12 * np.abs(full).max())


def test_reduced_spectrum_through_the_scores_gram(rng):
    """n < r: the spectrum of S~ from the n x n Gram Z Z^T, padded with zeros."""
    xs = [rng.standard_normal((25, 6)), rng.standard_normal((25, 60)),
          rng.standard_normal((25, 80)) * 3.0]
    cov, red = reduce_views(xs, 25)
    assert red.dims == (6, 24, 24)
    assert red.scores_gram.shape == (25, 25)
    got = np.sort(red.spectrum_of(cov))
    want = np.linalg.eigvalsh(cov)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * want[-1])
    assert red.spectrum_of(cov.copy()) is None  # a rescaled or copied S~: not this one
    narrow, small = reduce_views([rng.standard_normal((25, 3)), rng.standard_normal((25, 4))], 25)
    assert small.scores_gram is None
    assert small.spectrum_of(narrow) is None


@pytest.mark.parametrize("name", ["masked_shrink", "schur", "naive"])
def test_sparse_views_are_centred_implicitly(name, rng):
    """Sparse views with non-zero column means give the dense fit."""
    model = hs.HierarchicalFactorModel.random((20, 80), "AB:2 B:1", rng=rng)
    data = model.sample(30, rng=rng)
    dense = [np.where(rng.random(x.shape) < 0.3, 0.0, x + 2.0) for x in data.Xs]
    est = estimators.get(name)(noise_rule="per_view")
    ref = est.fit(dense, structure=model.structure, path="samples")
    scale = float(np.trace(np.cov(np.hstack(dense).T)))
    for views in ([sp.csr_matrix(x) for x in dense], [dense[0], sp.csc_matrix(dense[1])]):
        fit = est.fit(views, structure=model.structure)
        assert fit.diagnostics.extra["path"] == "samples"
        _assert_same_fit(ref, fit, scale)


def test_sample_path_never_forms_the_covariance(rng):
    """d = 60,010: the d x d covariance (29 GB) cannot be formed, the fit runs."""
    z = rng.standard_normal((30, 2))
    xs = [z @ rng.standard_normal((2, d)) + rng.standard_normal((30, d))
          for d in (10, 60_000)]
    fit = estimators.MaskedShrink().fit(xs, structure="AB:2")
    assert fit.loadings.shape == (60_010, 2)
    assert fit.diagnostics.extra["reduced_dims"] == [10, 29]


def test_estimators_without_the_sample_path_refuse_it_clearly(rng):
    data = [rng.standard_normal((10, 4)), rng.standard_normal((10, 30))]
    assert set(SAMPLE_PATH) <= set(estimators.sample_path_estimators())
    assert "slide" not in estimators.sample_path_estimators()
    with pytest.raises(ValidationError, match="SLIDE has no sample-space path"):
        estimators.SLIDE().fit(data, structure="AB:1", path="samples")
    with pytest.raises(ValidationError, match="no sample-space path"):
        estimators.SLIDE().fit([sp.csr_matrix(x) for x in data], structure="AB:1")
    with pytest.raises(ValidationError, match="path='covariance' needs dense"):
        estimators.NaivePCA().fit([sp.csr_matrix(x) for x in data], structure="AB:1",
                                  path="covariance")
    with pytest.raises(ValidationError, match="path must be one of"):
        estimators.NaivePCA().fit(data, structure="AB:1", path="thin")


def test_sparse_views_with_large_means_warn_then_are_refused(rng):
    """Implicit centring cancels: warn from mean^2/variance > 1e6, and call a column
    beyond 1e12 what it is (not merely 'constant')."""
    from hcl_stats.exceptions import NumericalWarning

    model = hs.HierarchicalFactorModel.random((60, 80), "AB:1 B:1", rng=rng)
    data = model.sample(25, rng=rng)
    est = estimators.SchurComplement()
    sd = max(float(np.max(np.std(x, axis=0))) for x in data.Xs)
    with pytest.warns(NumericalWarning, match=r"views\[0\] is sparse .* mean\^2 / variance"):
        est.fit([sp.csr_matrix(data.Xs[0] + 1e4 * sd), data.Xs[1]], structure="AB:1 B:1")
    with pytest.raises(ValidationError, match=r"views\[0\]\[:, \d+\] must vary .* below "
                                              r"1e-12 of its mean square .* Pass the view dense"):
        est.fit([sp.csr_matrix(data.Xs[0] + 1e8 * sd), data.Xs[1]], structure="AB:1 B:1")
    # the same offset, dense: no warning (warnings are errors here), a fit
    assert np.all(np.isfinite(est.fit([data.Xs[0] + 1e8 * sd, data.Xs[1]],
                                      structure="AB:1 B:1").loadings))


def test_sparse_constant_column_is_refused(rng):
    x = sp.random(12, 30, density=0.3, random_state=1, format="csr")
    x = sp.hstack([x, sp.csr_matrix(np.zeros((12, 1)))]).tocsr()
    with pytest.raises(ValidationError, match=r"views\[1\]\[:, 30\] must vary"):
        estimators.NaivePCA().fit([rng.standard_normal((12, 3)), x], structure="AB:1")


def test_init_is_projected_onto_the_row_spaces(rng):
    """A start in the row spaces gives the same refinement on both paths."""
    model = hs.HierarchicalFactorModel.random((8, 60), "AB:1 B:1", rng=rng)
    data = model.sample(25, rng=rng)
    start = estimators.SchurComplement().fit(data, structure=model.structure)
    est = estimators.MaskedGradient()
    a = est.fit(data, structure=model.structure, init=start, path="covariance")
    b = est.fit(data, structure=model.structure, init=start, path="samples")
    _assert_same_fit(a, b, float(np.trace(data.sample_cov())))


def test_wide_views_warn_before_an_estimator_forms_their_covariance(rng, monkeypatch):
    """An estimator without the sample path warns (CostWarning) on wide views from
    d >= WIDE_COVARIANCE_WARN; narrow views, the sample path and small d do not."""
    from hcl_stats.estimators import _samples
    from hcl_stats.exceptions import CostWarning

    monkeypatch.setattr(_samples, "WIDE_COVARIANCE_WARN", 60)
    model = hs.HierarchicalFactorModel.random((20, 45), "AB:1 B:1", rng=rng)
    wide = model.sample(30, rng=rng)
    with pytest.warns(CostWarning, match=r"MaskedMultistart has no sample-space path.*d = 65 > "
                                         r"n = 30: .* GiB.*pca_shrink"):
        estimators.MaskedMultistart().fit(wide, structure="AB:1 B:1")
    with warnings.catch_warnings():
        warnings.simplefilter("error", CostWarning)
        estimators.MaskedMultistart().fit(model.sample(50, rng=rng), structure="AB:1 B:1")  # n > d_m
        estimators.MaskedShrink().fit(wide, structure="AB:1 B:1")  # the sample path
        monkeypatch.setattr(_samples, "WIDE_COVARIANCE_WARN", 66)
        estimators.MaskedMultistart().fit(wide, structure="AB:1 B:1")  # d below the threshold


def test_multimodal_data_refuses_sparse_views_with_the_way_to_fit_them():
    with pytest.raises(ValidationError, match=r"views\[0\] must be a dense array here; got a "
                                              r"scipy.sparse matrix\. Pass the list of views "
                                              r"to Estimator.fit"):
        hs.MultimodalData([sp.csr_matrix(np.eye(3)), np.eye(3)])


def test_auto_takes_the_sample_path_only_where_it_shrinks_the_problem(rng):
    """One view just wider than n: the reduction saves almost nothing and costs an
    n x n Gram and its eigendecomposition (measured 1.9x slower at d = (50, 2001),
    n = 2000), so 'auto' keeps the covariance path below AUTO_SAMPLES_RATIO."""
    from hcl_stats.estimators._samples import samples_pay_off

    model = hs.HierarchicalFactorModel.random((5, 41), "AB:1 B:1", rng=rng)
    data = model.sample(40, rng=rng)  # reduced 5 + 39 = 44 of d = 46
    assert not samples_pay_off((5, 41), 40)
    fit = estimators.MaskedShrink().fit(data, structure="AB:1 B:1")
    assert fit.diagnostics.extra["path"] == "covariance"
    forced = estimators.MaskedShrink().fit(data, structure="AB:1 B:1", path="samples")
    assert forced.diagnostics.extra["path"] == "samples"
    _assert_same_fit(fit, forced, float(np.trace(data.sample_cov())))
    wide = hs.HierarchicalFactorModel.random((5, 100), "AB:1 B:1", rng=rng).sample(40, rng=rng)
    assert estimators.MaskedShrink().fit(wide, structure="AB:1 B:1").diagnostics.extra[
        "path"] == "samples"


def _schur_block_grams(w, dims, structure):
    off = np.concatenate([[0], np.cumsum(dims)])
    out = {}
    for b in structure.blocks:
        rows = np.concatenate([np.arange(off[m], off[m + 1]) for m in sorted(b)])
        wb = w[rows][:, structure.columns(b)]
        out[b] = wb @ wb.T
    return out


@settings(max_examples=40)
@given(
    design=structures_and_dims(max_views=3, max_blocks=4, max_rank=2),
    widen=st.lists(st.integers(0, 30), min_size=3, max_size=3),
    n_extra=st.integers(0, 20),
    seed=st.integers(0, 2**16),
)
def test_schur_factored_route_matches_the_dense_one(design, widen, n_extra, seed):
    """``schur_loadings`` with ``factor=(Z, sigma^2)`` computes the same loadings.

    ``s_w = Z^T Z - sigma^2 I``: view subsets with more coordinates than ``n`` take
    their eigenpairs in the ``n``-dimensional space of ``Z`` (the Gram of ``Z_O``
    for a conditioning step, a thin QR of ``[Z_S; L^T]^T`` for a block); narrower
    ones, and a block whose wanted eigenvalues are not all from that space, take
    the dense ``eigh``. Every block Gram agrees to 1e-8 of ``||s_w||``.
    """
    from hcl_stats.estimators import schur_loadings

    structure, dims = design
    dims = tuple(d + w for d, w in zip(dims, widen, strict=False))
    n = structure.total_rank + 2 + n_extra
    model = hs.HierarchicalFactorModel.random(dims, structure, noise_var=1.0, rng=seed)
    x = np.hstack(model.sample(n, rng=np.random.default_rng(seed + 1)).Xs)
    z = (x - x.mean(axis=0)) / np.sqrt(n - 1.0)
    s_w = z.T @ z - np.eye(z.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dense, _ = schur_loadings(s_w, dims, structure, strict=False)
        factored, _ = schur_loadings(s_w, dims, structure, strict=False, factor=(z, 1.0))
    ga = _schur_block_grams(dense, dims, structure)
    gb = _schur_block_grams(factored, dims, structure)
    scale = float(np.linalg.norm(s_w))
    for blk in ga:
        assert float(np.linalg.norm(ga[blk] - gb[blk])) <= 1e-8 * scale, blk


def test_schur_factored_block_falls_back_when_the_complement_interleaves(rng, monkeypatch):
    """With ``n = 2`` and one column in ``L``, ``Z^T Z - L L^T`` has two positive
    eigenvalues and one negative one on the span of ``[Z; L^T]`` (interlacing), and
    zeros elsewhere: its third largest eigenvalue is a zero of the complement, not
    one of the ``3 x 3`` core, so the factored route hands the top 3 over to the
    dense ``eigh``. Without ``L`` the top 2 come from the core: factored route.
    """
    from hcl_stats.estimators import spectral

    sizes = []

    def recording(a, k, **kwargs):
        sizes.append(a.shape[0])
        return top_eigh(a, k, **kwargs)

    monkeypatch.setattr(spectral, "top_eigh", recording)
    z = rng.standard_normal((2, 20))
    shift = 0.5
    s_w = z.T @ z - shift * np.eye(20)
    sl = [slice(0, 20)]
    low = 3.0 * rng.standard_normal((20, 1))
    _, (vals, _) = spectral._schur_top(s_w, sl, [low], 2, "joint", (z, shift))
    assert sizes == [3, 20]  # the core, then the dense route
    want = np.linalg.eigvalsh(s_w - low @ low.T)[::-1][:3]
    np.testing.assert_allclose(vals, want, atol=1e-10 * np.abs(want).max())
    assert vals[2] == pytest.approx(-shift)
    sizes.clear()
    _, (vals, vecs) = spectral._schur_top(s_w, sl, [], 1, "joint", (z, shift))
    assert sizes == [2]  # the factored route only
    want, exact = top_eigh(s_w, 2)  # with the sign rule of canonical_signs
    np.testing.assert_allclose(vals, want, rtol=1e-12)
    np.testing.assert_allclose(vecs, exact, atol=1e-10)


def test_row_basis_products_match_the_explicit_basis(rng):
    """A Gram-route basis is kept as ``V = Y^T C``: ``V w`` and ``V^T u`` through the
    factors equal the products with the explicit orthonormal ``V``."""
    from hcl_stats.estimators._samples import RowBasis

    xs = [rng.standard_normal((20, 70)) + 5.0]
    _, red = reduce_views(xs, 20)
    basis = red.bases[0]
    assert isinstance(basis, RowBasis)
    v = red.basis(0)
    assert v.shape == basis.shape == (70, 19)
    np.testing.assert_allclose(v.T @ v, np.eye(19), atol=1e-12)
    w = rng.standard_normal((19, 3))
    u = rng.standard_normal((70, 3))
    np.testing.assert_allclose(red.lift(w), v @ w, atol=1e-12)
    np.testing.assert_allclose(red.project(u), v.T @ u, atol=1e-12)


def _view_with_spectrum(rng, n, d, sv):
    """An ``n x d`` view whose centred rows have singular values ``sv`` (n - 1 of them)."""
    u = np.linalg.qr(rng.standard_normal((n, n - 1)))[0]
    u -= u.mean(axis=0)
    return (u * sv) @ np.linalg.qr(rng.standard_normal((d, n - 1)))[0].T + 1.0


def test_gram_route_checks_the_columns_of_the_smallest_mu(rng):
    """Only the 16 smallest singular values are small (1e-4 of the others): the basis
    columns the Gram route checks are those, so it refuses the view (a check of any
    other 16 columns would pass it); the SVD then gives an orthonormal basis."""
    from hcl_stats.estimators._samples import GRAM_ORTHO_COLUMNS, RowBasis

    n, d = 60, 300
    sv = np.ones(n - 1)
    sv[-GRAM_ORTHO_COLUMNS:] = np.logspace(-4, -4.5, GRAM_ORTHO_COLUMNS)
    _, red = reduce_views([_view_with_spectrum(rng, n, d, sv)], n)
    assert not isinstance(red.bases[0], RowBasis)  # refused: the SVD's explicit basis
    v = red.basis(0)
    np.testing.assert_allclose(v.T @ v, np.eye(v.shape[1]), atol=1e-12)


@pytest.mark.parametrize("floor", [1e-1, 1e-2, 1e-3, 1e-4])
def test_bases_accepted_by_the_gram_route_are_orthonormal(floor, rng):
    """Views with a few unit singular values over a flat floor (where the largest
    entry of ``|V^T V - I|`` need not lie among the checked columns): every basis
    the Gram route accepts is orthonormal to 1e-9, a tenth of the 1e-8 to which
    the two paths must agree."""
    from hcl_stats.estimators._samples import RowBasis

    for _ in range(10):
        n = int(rng.choice([40, 60, 120]))
        d = int(rng.choice([n + 20, 3 * n]))
        sv = np.full(n - 1, floor * rng.uniform(0.5, 2.0))
        sv[: rng.integers(1, 5)] = 1.0
        sv[-16:] *= rng.uniform(0.7, 1.0)
        _, red = reduce_views([_view_with_spectrum(rng, n, d, sv)], n)
        v = red.basis(0)
        err = np.abs(v.T @ v - np.eye(v.shape[1])).max()
        assert err <= (1e-9 if isinstance(red.bases[0], RowBasis) else 1e-12)


def test_schur_factored_conditioning_with_k_o_above_n(rng):
    """``k_O = 4 > n - 1 = 2``: the Gram of ``Z_O`` has fewer eigenpairs than the
    truncated inverse asks for; the rest of ``S_W[O,O]``'s top ``k_O + 1`` are
    ``-sigma^2``, and the loadings equal the dense route's."""
    from hcl_stats.estimators import schur_loadings
    from hcl_stats.estimators.spectral import _conditioning

    model = hs.HierarchicalFactorModel.random((30, 30), "AB:4 A:1", rng=rng)
    x = np.hstack(model.sample(3, rng=rng).Xs)
    z = (x - x.mean(axis=0)) / np.sqrt(2.0)
    s_w = z.T @ z - np.eye(60)
    a_sl, b_sl = [slice(0, 30)], [slice(30, 60)]
    dense_vals, _ = _conditioning(s_w, a_sl, b_sl, 4, 30, None)
    vals, column = _conditioning(s_w, a_sl, b_sl, 4, 30, (z, 1.0))
    np.testing.assert_allclose(vals, dense_vals, atol=1e-10 * np.abs(dense_vals).max())
    assert vals[-1] == -1.0  # the padding: an eigenvalue -sigma^2 of S_W[O,O]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dense, _ = schur_loadings(s_w, model.dims, model.structure, strict=False)
        factored, _ = schur_loadings(s_w, model.dims, model.structure, strict=False,
                                     factor=(z, 1.0))
    np.testing.assert_allclose(factored @ factored.T, dense @ dense.T,
                               atol=1e-10 * np.linalg.norm(s_w))


def test_dense_schur_route_retries_when_the_subset_driver_comes_up_short(rng, monkeypatch):
    """LAPACK's subset driver can return too few eigenpairs (the wanted eigenvalue
    inside a cluster of equal ones); with the matrix overwritten, ``_top_eigh_of``
    builds it again and decomposes it without overwrite: same eigenpairs."""
    from hcl_stats.estimators import spectral
    from hcl_stats.exceptions import SolverError

    x = rng.standard_normal((30, 3))
    a = x @ x.T
    calls = []

    def flaky(m, k, *, overwrite=False):
        calls.append(overwrite)
        if overwrite:
            m[:] = np.nan  # LAPACK may leave the matrix destroyed
            raise SolverError("returned 2 of the top 4 eigenpairs")
        return top_eigh(m, k)

    monkeypatch.setattr(spectral, "top_eigh", flaky)
    vals, vecs = spectral._top_eigh_of(lambda: a.copy(), 4)
    assert calls == [True, False]
    want, exact = top_eigh(a, 4)
    np.testing.assert_allclose(vals, want, atol=1e-12 * want[0])
    np.testing.assert_allclose(np.abs(vecs[:, :3].T @ exact[:, :3]), np.eye(3), atol=1e-8)
