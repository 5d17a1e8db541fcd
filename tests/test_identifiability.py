"""Identifiability: the checker, and non-uniqueness when a condition breaks."""

import numpy as np
import pytest
from hypothesis import given
from strategies import identifiable_models, structures_and_dims

import hcl_stats as hs
from hcl_stats.estimators import SchurComplement
from hcl_stats.exceptions import NotIdentifiableError


@given(structures_and_dims())
def test_generated_dims_satisfy_every_condition(sd):
    s, dims = sd
    report = hs.check_identifiable(s, dims)
    assert report.identifiable is True, str(report)
    assert bool(report)


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


def test_correlated_latents_are_not_identified():
    """Free Cov(z): (W, R) and (W G, G^-1 R G^-T) give the same Sigma (G block-triangular)."""
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
    assert any(c.name == "uncorrelated_latents" and not c.holds for c in report.conditions)
    assert hs.check_identifiable(m).identifiable is True


def test_block_rank_above_its_rows_is_flagged():
    report = hs.check_identifiable("AB:3 A:1", dims=(1, 1))
    assert report.identifiable is False
    assert "block AB has rank 3 > d_S = 2" in str(report)
    with pytest.raises(NotIdentifiableError, match="block AB has rank 3"):
        report.raise_if_failed()


def test_schur_condition_failure_is_reported_and_refused():
    # view B alone carries AB:1 and B:1 with d_B = 1 < k_B = 2
    s = hs.Structure.parse("AB:1 A:1 B:1")
    report = hs.check_identifiable(s, (4, 1))
    assert report.identifiable is None  # a sufficient condition fails
    assert "for block A: the views outside it (B) have d_O = 1 < k_O = 2" in str(report)
    model = hs.HierarchicalFactorModel.random((4, 1), s, rng=0)
    with pytest.raises(NotIdentifiableError, match="d_O = 1 < k_O = 2"):
        SchurComplement().fit_covariance(model.covariance(), dims=(4, 1), structure=s)


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
