"""Identifiability: the exact criterion, the Schur matching condition, and witnesses."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import edge_designs, identifiable_models, structures_and_dims

import hcl_stats as hs
from hcl_stats.estimators import SchurComplement
from hcl_stats.exceptions import NotIdentifiableError, ValidationError
from hcl_stats.identifiability import (
    PRIMES,
    jacobian_rank,
    latent_block_verdicts,
    rank_mod_p,
    schur_rank,
)
from hcl_stats.testing import random_model

COUNTER = hs.Structure.parse("AB:2 B:2 A:1 C:1")


def _conds(report):
    return {c.name: c for c in report.conditions}


# ------------------------------------------------------------- exact ranks
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 6), st.integers(0, 2**32 - 1))
def test_rank_mod_p_matches_the_rational_rank(m, n, r, seed):
    """rank over F_p equals rank over Q when every minor is below p in size."""
    gen = np.random.default_rng(seed)
    # entries in {-1, 0, 1}: |a_ij| <= r <= 6, row norms <= 6*sqrt(6), and the
    # Hadamard bound (6*sqrt(6))^6 ~ 1.0e7 stays below p for every draw
    a = gen.integers(-1, 2, size=(m, r)) @ gen.integers(-1, 2, size=(r, n))
    rational = int(np.linalg.matrix_rank(a.astype(float))) if a.any() else 0
    # Hadamard: |minor| <= prod of row norms < p, so a minor vanishes mod p only
    # if it vanishes over Q
    hadamard = float(np.prod(np.maximum(np.linalg.norm(a.astype(float), axis=1), 1.0)))
    assert hadamard < PRIMES[0]
    assert rank_mod_p(a, PRIMES[0]) == rational
    assert rank_mod_p(a, PRIMES[1]) == rational


def test_rank_mod_p_sees_rank_loss_that_is_only_modular():
    p = PRIMES[0]
    a = np.array([[1, 1], [1, 1 + p]])  # det = p: rank 2 over Q, rank 1 over F_p
    assert np.linalg.matrix_rank(a.astype(float)) == 2
    assert rank_mod_p(a, p) == 1


@pytest.mark.parametrize("prime", [1, 2**26, 3.0])
def test_rank_mod_p_rejects_bad_primes(prime):
    with pytest.raises(ValidationError, match=r"prime must be an integer in \[2, 2\^26\)"):
        rank_mod_p([[1]], prime)


def test_rank_mod_p_rejects_non_matrices():
    with pytest.raises(ValidationError, match=r"a must be a 2-D integer matrix; got shape \(3,\)"):
        rank_mod_p([1, 2, 3], PRIMES[0])


# ------------------------------------------------------------ Jacobian rank
def _fd_rank(structure, dims, noise, rng, h=1e-6):
    """Independent check: central finite-difference Jacobian of model.covariance()."""
    model = random_model(structure, dims, rng=rng)
    w = np.asarray(model.loadings)
    mask = structure.mask(dims)
    idx = np.argwhere(mask)
    iu = np.triu_indices(sum(dims))

    def sigma(wv, nv):
        return hs.HierarchicalFactorModel(dims, structure, wv, nv).covariance()[iu]

    nv0 = np.full(len(dims), 1.0) if noise == "per_view" else 1.0
    cols = []
    for i, c in idx:
        wp, wm = w.copy(), w.copy()
        wp[i, c] += h
        wm[i, c] -= h
        cols.append((sigma(wp, nv0) - sigma(wm, nv0)) / (2 * h))
    if noise == "scalar":
        cols.append((sigma(w, 1.0 + h) - sigma(w, 1.0 - h)) / (2 * h))
    else:
        for m in range(len(dims)):
            e = np.zeros(len(dims))
            e[m] = h
            cols.append((sigma(w, nv0 + e) - sigma(w, nv0 - e)) / (2 * h))
    sv = np.linalg.svd(np.array(cols).T, compute_uv=False)
    return int(np.sum(sv > 1e-6 * sv[0]))


@settings(max_examples=60, deadline=None)
@given(edge_designs(max_views=4, max_rank=2), st.sampled_from(["scalar", "per_view"]),
       st.integers(0, 2**32 - 1))
def test_exact_rank_agrees_with_finite_differences(design, noise, seed):
    s, dims = design
    jr = jacobian_rank(s, dims, noise=noise, method="exact")
    if jr.method == "count":
        assert jr.n_params - jr.n_rotations > jr.n_moments
        return
    assert jr.rank == _fd_rank(s, dims, noise, np.random.default_rng(seed))


def test_jacobian_rank_counts_parameters_and_rotations():
    jr = jacobian_rank("AB:2 A:1", (4, 3), method="exact")
    assert jacobian_rank("AB:2 A:1", (4, 3)).method == "schur"  # auto: Theorem 4 shortcut
    assert jr.n_params == 2 * 7 + 4 + 1
    assert jr.n_rotations == 1
    assert jr.target == jr.n_params - 1
    assert jr.full
    assert jr.certified
    assert jr.method == "exact"
    assert jacobian_rank("AB:2 A:1", (4, 3), noise="per_view").n_params == jr.n_params + 1
    assert jacobian_rank("AB:2 A:1", (4, 3), noise="known").n_params == jr.n_params - 1


def test_counting_certifies_non_identifiability():
    jr = jacobian_rank("AB:1 A:1 B:1", (1, 1))
    assert jr.method == "count"
    assert jr.certified
    assert not jr.full
    assert jr.target == 5 > jr.n_moments == 3


def test_float_method_agrees_on_the_counterexample():
    exact = jacobian_rank(COUNTER, (10, 3, 10))
    flt = jacobian_rank(COUNTER, (10, 3, 10), method="float", rng=1)
    assert exact.full
    assert flt.full
    assert exact.rank == flt.rank == 51
    assert not flt.certified  # a floating-point gap is evidence, not a certificate


def test_jacobian_rank_rejects_bad_options():
    with pytest.raises(ValidationError, match=r"method must be one of 'auto', 'exact', 'float'"):
        jacobian_rank("A:1", (3,), method="svd")
    with pytest.raises(ValidationError, match=r"noise must be one of 'scalar', 'per_view', 'known'"):
        jacobian_rank("A:1", (3,), noise="iso")


# ------------------------------------------------------ Schur matching rank
def _structural_rank_numeric(structure, dims, block, gen):
    outside = [m for m in range(len(dims)) if m not in block]
    meets = [t for t in structure.blocks if not t.isdisjoint(outside)]
    rows = []
    for m in outside:
        rows.append(np.concatenate([
            gen.standard_normal((dims[m], structure.rank_of(t))) if m in t
            else np.zeros((dims[m], structure.rank_of(t))) for t in meets], axis=1))
    c = np.concatenate(rows, axis=0)
    return int(np.linalg.matrix_rank(c))


def _hall(structure, dims, block):
    """Hall's condition by brute force over sets of blocks meeting O."""
    outside = [m for m in range(len(dims)) if m not in block]
    meets = [t for t in structure.blocks if not t.isdisjoint(outside)]
    for size in range(1, len(meets) + 1):
        for ts in itertools.combinations(meets, size):
            views = set().union(*ts) & set(outside)
            if sum(structure.rank_of(t) for t in ts) > sum(dims[m] for m in views):
                return False
    return True


@settings(max_examples=80, deadline=None)
@given(edge_designs(max_views=4, max_rank=3), st.integers(0, 2**32 - 1))
def test_matching_rank_is_the_generic_rank_and_hall(design, seed):
    s, dims = design
    gen = np.random.default_rng(seed)
    for b in s.blocks:
        if len(b) == s.n_views:
            continue
        rank, k_o = schur_rank(s, dims, b)
        if k_o == 0:  # no block meets the outside views: nothing to condition on
            assert rank == 0
            continue
        assert rank == _structural_rank_numeric(s, dims, b, gen)
        assert (rank == k_o) == _hall(s, dims, b)


def test_counterexample_gets_no_schur_certificate_but_is_identifiable(global_seed):
    report = hs.check_identifiable(COUNTER, (10, 3, 10))
    c = _conds(report)
    assert report.identifiable is True
    assert c["jacobian_rank"].holds
    assert c["jacobian_rank"].kind == "exact"
    assert not c["schur_matching"].holds
    assert "generic column rank 4 < k_O = 5" in c["schur_matching"].reason
    assert "AB B load only on views B, which have d = 3 rows for 4 columns" in str(report)
    assert report.exact_estimators == ("masked_multistart",)
    model = hs.HierarchicalFactorModel.random((10, 3, 10), COUNTER, rng=global_seed)
    with pytest.raises(NotIdentifiableError, match=r"generic rank 4 \(maximum matching\)"):
        SchurComplement().fit_covariance(model.covariance(), dims=(10, 3, 10), structure=COUNTER)


def test_one_more_row_restores_the_schur_route(global_seed):
    """Other side of the edge: d_B = 4 gives 4 rows for the 4 columns of AB and B."""
    report = hs.check_identifiable(COUNTER, (10, 4, 10))
    assert _conds(report)["schur_matching"].holds
    assert "schur" in report.exact_estimators
    model = hs.HierarchicalFactorModel.random((10, 4, 10), COUNTER, rng=global_seed)
    fit = SchurComplement().fit_covariance(model.covariance(), dims=(10, 4, 10), structure=COUNTER)
    assert max(hs.metrics.structure_gram_errors(fit, model, relative=True).values()) < 1e-8


def test_old_rule_start_is_inexact_on_the_counterexample(global_seed):
    """The inexact Schur start (d_O >= k_O only) is off by percents; refinement fixes it."""
    from hcl_stats.estimators import schur_loadings, signal_covariance

    model = hs.HierarchicalFactorModel.random((10, 3, 10), COUNTER, rng=global_seed)
    s_w = signal_covariance(model.covariance(), (10, 3, 10), 1.0)
    with pytest.warns(hs.exceptions.NumericalWarning):
        w0, _ = schur_loadings(s_w, (10, 3, 10), COUNTER, strict=False)
    start = hs.HierarchicalFactorModel((10, 3, 10), COUNTER, w0, 1.0)
    assert max(hs.metrics.structure_gram_errors(start, model, relative=True).values()) > 1e-3


# --------------------------------------------------- the report and old facts
@given(structures_and_dims())
def test_generated_dims_satisfy_every_condition(sd):
    s, dims = sd
    report = hs.check_identifiable(s, dims)
    assert report.identifiable is True, str(report)
    assert all(c.holds for c in report.conditions), str(report)
    assert "schur" in report.exact_estimators


@given(identifiable_models())
def test_models_pass_the_numerical_checks(model):
    assert hs.check_identifiable(model).identifiable is True


def test_d_not_above_k_noise_trades_with_specific_variance():
    """d <= K: (sigma^2, specific blocks) is not identified."""
    s = hs.Structure.parse("AB:1 A:1 B:1")
    w1 = np.array([[1.0, 0.8, 0.0], [0.5, 0.0, 0.9]])
    t = 0.3
    w2 = np.array([[1.0, np.sqrt(0.8**2 + t), 0.0], [0.5, 0.0, np.sqrt(0.9**2 + t)]])
    m1 = hs.HierarchicalFactorModel((1, 1), s, w1, noise_var=1.0)
    m2 = hs.HierarchicalFactorModel((1, 1), s, w2, noise_var=1.0 - t)
    np.testing.assert_allclose(m1.covariance(), m2.covariance(), atol=1e-14)
    assert hs.metrics.block_gram_errors(m1, m2)[(0, frozenset({0}))] > 0.1
    report = hs.check_identifiable(s, (1, 1))
    assert not report
    assert "d = 2 <= K = 3" in str(report)
    assert "> d(d+1)/2 = 3 distinct entries" in str(report)
    assert report.exact_estimators == ()


@settings(max_examples=40, deadline=None)
@given(edge_designs(max_views=3, max_rank=2), st.integers(0, 2**32 - 1))
def test_noise_is_the_bottom_eigenvalue_iff_the_rank_leaves_room(design, seed):
    """Proposition 2 on both sides, at the edge of the rank budget.

    ``sigma^2`` is the smallest eigenvalue of Sigma iff ``rank W < d``; d > K
    forces that (the proposition), and then ``sigma^2`` is also the mean of the
    d - K smallest. When W has full row rank d (only possible if d <= K) every
    eigenvalue is above ``sigma^2``. Sufficient, not necessary: d <= K with a view
    in no block still leaves room. Per view likewise with ``d_m > k_m``.
    """
    s, dims = design
    model = random_model(s, dims, noise_var=0.7, rng=seed)
    vals = np.linalg.eigvalsh(model.covariance())
    d, k = sum(dims), s.total_rank
    tol = 1e-9 * vals[-1]
    full_row_rank = np.linalg.matrix_rank(model.loadings) == d
    if d > k:
        assert not full_row_rank
        np.testing.assert_allclose(vals[: d - k], 0.7, atol=tol)
        assert hs.estimators.estimate_noise_var(model.covariance(), dims, s) == pytest.approx(
            0.7, abs=tol
        )
    if full_row_rank:
        assert vals[0] > 0.7 + tol
    else:
        assert vals[0] == pytest.approx(0.7, abs=tol)
    per_view = random_model(s, dims, noise_var=[0.5, 1.0, 1.5][: len(dims)], rng=seed)
    cov, w = per_view.covariance(), np.asarray(per_view.loadings)
    for m in range(len(dims)):
        sl = per_view.row_slice(m)
        noise = per_view.noise_diagonal()[sl][0]
        bottom = np.linalg.eigvalsh(cov[sl, sl])[0]
        full_m = np.linalg.matrix_rank(w[sl]) == dims[m]
        if dims[m] > s.view_rank(m):
            assert not full_m
        if full_m:
            assert bottom > noise + tol
        else:
            assert bottom == pytest.approx(noise, abs=tol)


def _mask_preserving_dimension(model):
    """dim {G : W G respects the mask}: per column, K - rank of W on the rows it must miss."""
    w = np.asarray(model.loadings)
    mask = model.structure.mask(model.dims)
    # a column of a block on every view must miss no row: rank 0 (numpy < 1.26 raises
    # on an empty matrix_rank)
    return sum(w.shape[1] - (np.linalg.matrix_rank(w[~mask[:, j]]) if (~mask[:, j]).any() else 0)
               for j in range(w.shape[1]))


def _block_triangular_dimension(structure):
    """sum over blocks S of r_S times the total rank of the blocks T inside S."""
    return sum(
        r * sum(rt for t, rt in zip(structure.blocks, structure.ranks, strict=True) if t <= b)
        for b, r in zip(structure.blocks, structure.ranks, strict=True)
    )


@settings(max_examples=30, deadline=None)
@given(identifiable_models(max_views=3, max_rank=2))
def test_mask_preserving_transforms_are_block_triangular_on_the_schur_route(model):
    """Uniqueness under the mask (after Theorem 4): with every C_O of full column
    rank, the G with W G mask-respecting are exactly the block-triangular ones
    (G_{T,S} = 0 unless T is inside S), so an orthogonal one is block-diagonal."""
    assert _mask_preserving_dimension(model) == _block_triangular_dimension(model.structure)


@pytest.mark.parametrize(("d_b", "extra"), [(3, 1), (4, 0)])
def test_mask_preserving_transforms_grow_when_the_matching_fails(d_b, extra, global_seed):
    """The other side: issue 16's design with d_B = 3 (Hall fails for A, C_O has a
    one-dimensional null space) admits one more mask-preserving direction."""
    s = hs.Structure.parse("AB:2 B:2 A:1 C:1")
    model = random_model(s, (10, d_b, 10), rng=global_seed)
    assert _mask_preserving_dimension(model) == _block_triangular_dimension(s) + extra


def test_remark_example_is_identified_without_schur():
    """AB:1 A:1 B:1 with d = (3, 1): Schur fails, the exact criterion holds."""
    report = hs.check_identifiable("AB:1 A:1 B:1", (3, 1))
    assert report.identifiable is True
    assert not _conds(report)["schur_matching"].holds


def test_block_rank_above_its_rows_is_flagged():
    report = hs.check_identifiable("AB:3 A:1", dims=(1, 1))
    assert report.identifiable is False
    assert "block AB has rank 3 > d_S = 2" in str(report)
    with pytest.raises(NotIdentifiableError, match="block AB has rank 3"):
        report.raise_if_failed()


def test_numerically_rank_deficient_loadings_are_flagged():
    s = hs.Structure.parse("AB:2 A:1")
    m = hs.HierarchicalFactorModel.random((4, 4), s, rng=0)
    w = np.array(m.loadings)
    w[:, 1] = w[:, 0]  # the two columns of AB coincide
    bad = hs.HierarchicalFactorModel((4, 4), s, w, 1.0)
    report = hs.check_identifiable(bad)
    assert report.identifiable is False
    assert "numerical rank < 2" in str(report)


def test_per_view_noise_condition():
    s = hs.Structure.parse("AB:2 A:1")
    assert hs.check_identifiable(s, (4, 3), noise="per_view").identifiable is True
    report = hs.check_identifiable(s, (3, 2), noise="per_view")
    assert "view A has d_1 = 3 <= k_1 = 3" in str(report)


def test_to_dict_has_the_documented_keys():
    d = hs.check_identifiable(COUNTER, (10, 3, 10)).to_dict()
    assert d["identifiable"] is True
    assert d["exact_estimators"] == ["masked_multistart"]
    for c in d["conditions"]:
        assert set(c) == {"name", "holds", "kind", "reason"}
        assert c["kind"] in {"necessary", "sufficient", "exact"}
    assert {c["name"] for c in d["conditions"]} >= {"jacobian_rank", "schur_matching"}


def test_cli_json(capsys):
    import json

    from hcl_stats.cli import main

    rc = main(["check-identifiable", "--dims", "10,3,10", "--structure",
               "AB:2 B:2 A:1 C:1", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out["identifiable"] is True
    assert out["exact_estimators"] == ["masked_multistart"]
    rc = main(["check-identifiable", "--dims", "1,1", "--structure", "AB:1 A:1 B:1", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1
    assert out["identifiable"] is False
    assert out["exact_estimators"] == []


# ------------------------------------------------------- correlated latents
def test_correlated_nested_latents_are_not_identified():
    """Free Cov(z) between nested blocks: (W, R) and (W G, G^-1 R G^-T) give the same Sigma."""
    s = hs.Structure.parse("AB:1 A:1 B:1")
    m = hs.HierarchicalFactorModel.random((3, 3), s, noise_var=1.0, rng=0)
    w = np.asarray(m.loadings)
    g = np.eye(3)
    g[1, 0] = 0.7  # the global block absorbs part of the specific block of A
    w2 = w @ g
    assert np.all(w2[~s.mask((3, 3))] == 0)  # still respects the structure
    r2 = np.linalg.inv(g) @ np.linalg.inv(g).T
    m2 = hs.HierarchicalFactorModel((3, 3), s, w2, 1.0, latent_cov=r2)
    np.testing.assert_allclose(m.covariance(), m2.covariance(), atol=1e-12)
    assert max(hs.metrics.structure_gram_errors(m, m2).values()) > 0.1
    report = hs.check_identifiable(m2)
    assert report.identifiable is False
    assert not _conds(report)["latent_correlation"].holds
    assert report.block_verdicts == {
        frozenset({0, 1}): False, frozenset({0}): False, frozenset({1}): True}
    assert hs.check_identifiable(m).identifiable is True


def test_correlation_inside_a_block_keeps_every_block(global_seed):
    s = hs.Structure.parse("ABC:2 AB:2 C:1")
    base = hs.HierarchicalFactorModel.random((5, 5, 5), s, rng=global_seed)
    gen = np.random.default_rng(global_seed)
    r = np.eye(5)
    a = gen.standard_normal((2, 2))
    r[:2, :2] = a @ a.T + np.eye(2)  # correlated inside ABC only
    m = hs.HierarchicalFactorModel((5, 5, 5), s, base.loadings, 1.0, latent_cov=r)
    report = hs.check_identifiable(m)
    assert report.identifiable is True
    assert all(report.block_verdicts.values())
    fit = SchurComplement().fit_covariance(m.covariance(), dims=m.dims, structure=s)
    # the identified quantity is W^S R_SS W^S^T
    whitened = np.array(base.loadings)
    vals, vecs = np.linalg.eigh(r[:2, :2])
    whitened[:, :2] = whitened[:, :2] @ (vecs * np.sqrt(vals)) @ vecs.T
    truth = hs.HierarchicalFactorModel((5, 5, 5), s, whitened, 1.0)
    assert max(hs.metrics.structure_gram_errors(fit, truth, relative=True).values()) < 1e-8


def _fd_gram_identified(structure, dims, pairs, block, gen, h=1e-6):
    """Numerical second method: does d Gram_S lie in the row space of d Sigma?"""
    model = random_model(structure, dims, rng=gen)
    w0 = np.asarray(model.loadings)
    k = structure.total_rank
    idx = [tuple(x) for x in np.argwhere(structure.mask(dims))]
    rp = [(structure.columns(a).start, structure.columns(b).start) for a, b in pairs]
    theta0 = np.concatenate([w0[tuple(np.array(idx).T)], 0.3 * gen.standard_normal(len(rp)), [1.0]])
    iu = np.triu_indices(sum(dims))
    cols = structure.columns(block)

    def unpack(theta):
        w = np.zeros_like(w0)
        w[tuple(np.array(idx).T)] = theta[: len(idx)]
        r = np.eye(k)
        for (i, j), v in zip(rp, theta[len(idx) : len(idx) + len(rp)], strict=True):
            r[i, j] = r[j, i] = v
        return w, r, theta[-1]

    def sigma(theta):
        w, r, nv = unpack(theta)
        return (w @ r @ w.T + nv * np.eye(w.shape[0]))[iu]

    def gram(theta):
        w, _, _ = unpack(theta)
        return (w[:, cols] @ w[:, cols].T)[iu]

    def jac(f):
        out = []
        for q in range(theta0.size):
            e = np.zeros(theta0.size)
            e[q] = h
            out.append((f(theta0 + e) - f(theta0 - e)) / (2 * h))
        return np.array(out)

    js, jg = jac(sigma), jac(gram)

    def rank(a):
        sv = np.linalg.svd(a, compute_uv=False)
        return int(np.sum(sv > 1e-6 * sv[0]))

    return rank(np.concatenate([js, jg], axis=1)) == rank(js)


@pytest.mark.parametrize(
    ("structure", "dims", "pairs"),
    [("AB:1 A:1 B:1", (3, 3), [({0}, {1})]),
     ("AB:1 A:1 B:1", (3, 3), [({0}, {0, 1})]),
     ("ABC:1 AB:1 C:1", (2, 2, 3), [({0, 1}, {2})]),
     ("AB:1 BC:1 A:1", (2, 3, 2), [({0, 1}, {1, 2})])],
)
def test_latent_verdicts_agree_with_finite_differences(structure, dims, pairs, global_seed):
    s = hs.Structure.parse(structure)
    verdicts = latent_block_verdicts(s, dims, pairs)
    gen = np.random.default_rng(global_seed)
    for b in s.blocks:
        assert verdicts[b] == _fd_gram_identified(s, dims, [
            (frozenset(x), frozenset(y)) for x, y in pairs], b, gen), b


def test_latent_verdict_errors():
    s = hs.Structure.parse("AB:1 A:1 B:1")
    with pytest.raises(ValidationError, match="pairs must name blocks of the structure"):
        latent_block_verdicts(s, (3, 3), [({0, 1}, {2})])
    with pytest.raises(ValidationError, match="pairs must join two different blocks"):
        latent_block_verdicts(s, (3, 3), [({0}, {0})])


@settings(max_examples=25, deadline=None)
@given(edge_designs(max_views=3, max_rank=2, low=0, high=6), st.sampled_from(["scalar", "per_view"]))
def test_shortcuts_agree_with_the_direct_rank(design, noise):
    """Schur route and padding (Lemma 7) certify only what the direct rank confirms."""
    import hcl_stats._jacobian as ident

    s, dims = design
    direct = jacobian_rank(s, dims, noise=noise, method="exact")
    old = ident._DIRECT_ENTRIES
    ident._DIRECT_ENTRIES = 0.0  # force the shortcuts
    try:
        auto = ident._decide(s, dims, noise, np.random.default_rng(0))
    finally:
        ident._DIRECT_ENTRIES = old
    assert auto.full == direct.full
    if auto.method in ("schur", "padding"):
        assert direct.full


def test_paper_dims_are_decided_without_forming_the_jacobian():
    report = hs.check_identifiable("all:3", (100, 500, 800))
    assert report.identifiable
    assert "implied by the Schur route" in _conds(report)["jacobian_rank"].reason
    big = hs.check_identifiable(COUNTER, (400, 3, 400))
    assert big.identifiable
    assert "Lemma 7" in _conds(big)["jacobian_rank"].reason


def test_large_dims_are_decided_without_a_d_by_d_index(monkeypatch):
    """The Schur route decides d = 300,000 without the 8 d^2-byte vech index.

    ``Layout.pos`` is the only d x d array of the checker; it must be built only
    when a Jacobian is formed (it used to be built for every Layout: 6.4 GB and
    18 s at d = 18,000, a MemoryError at d = 300,000).
    """
    import hcl_stats._jacobian as jac

    built = []
    original = jac.Layout.pos.func

    def spy(self):
        built.append(self.d)
        return original(self)

    monkeypatch.setattr(jac.Layout, "pos", property(spy))
    report = hs.check_identifiable("all:3", (100_000, 100_000, 100_000))
    assert report.identifiable
    assert built == []
    small = jac.Layout(hs.Structure.parse("AB:1 A:1"), (2, 3), "scalar")
    assert small.n_moments == 15
    assert small.pos.shape == (5, 5)
    assert built == [5]
    assert sorted(small.pos[np.triu_indices(5)].tolist()) == list(range(15))


def test_schur_route_failure_points_to_the_estimator_that_fits(global_seed):
    """dims (5, 6, 1), all:1: identifiable, but no Schur step isolates AB (d_O = 1
    < k_O = 4). The default estimator's error must say so and name the way out."""
    from hcl_stats.estimators import MaskedShrink

    report = hs.check_identifiable("all:1", (5, 6, 1))
    assert report.identifiable
    assert "masked_multistart" in report.exact_estimators
    model = hs.HierarchicalFactorModel.random((5, 6, 1), "all:1", rng=global_seed)
    data = model.sample(300, rng=global_seed)
    with pytest.raises(NotIdentifiableError,
                       match=r"may still be identifiable .*\(--estimator masked_multistart\)"):
        MaskedShrink().fit(data, structure="all:1")
