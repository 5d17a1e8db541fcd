"""Counting rules of select_structure_schur (population exactness, high-SNR ranks)."""

import numpy as np
import pytest

import hcl_stats as hs
from hcl_stats._rmt import debias_spikes
from hcl_stats.estimators.selection import _condition, select_structure_schur


@pytest.mark.parametrize("structure", ["ABC:1 B:1", "ABC:2 AB:1 C:1", "AB:1 BC:1 A:1 C:2"])
def test_population_exact_recovery(structure, rng):
    model = hs.HierarchicalFactorModel.random((5, 6, 7), structure, rng=rng)
    s, _ = select_structure_schur(model.signal_covariance(), model.dims, 1.0, None)
    assert s == model.structure


@pytest.mark.parametrize(
    ("dims", "structure"),
    [((30, 40, 50), "ABC:2"), ((50, 100, 150), "ABC:2 AB:2 AC:2 BC:2 A:2 B:2 C:2")],
)
def test_ranks_not_over_counted_at_high_snr(dims, structure, rng):
    model = hs.HierarchicalFactorModel.random(
        dims, structure, noise_var=0.1, singular_values=(2.0, 3.0), rng=rng
    )
    data = model.sample(5000, rng=rng)
    s_w = data.sample_cov() - 0.1 * np.eye(sum(dims))  # S - sigma^2 I, sigma^2 known
    s, _ = select_structure_schur(s_w, model.dims, 0.1, 5000)
    assert s == model.structure


def test_no_false_pair_block_next_to_a_specific_block(rng):
    # spikes of views outside S must not widen (or narrow) the edge of S: on this design
    # an earlier cross term let AB or BC through in about 1 of 6 bootstrap resamples
    model = hs.HierarchicalFactorModel.random(
        (5, 6, 7), "ABC:1 B:1", singular_values=(2.0, 3.0), rng=rng
    )
    data = model.sample(3000, rng=rng)
    s, scores = select_structure_schur(data.sample_cov() - np.eye(18), model.dims, 1.0, 3000)
    assert s == model.structure
    assert scores["AB"]["rank"] == 0
    assert scores["BC"]["rank"] == 0


def test_edges_scale_with_the_data(rng):
    """Rescaling the data by c multiplies every eigenvalue and edge by c^2."""
    model = hs.HierarchicalFactorModel.random((30, 40, 50), "ABC:1 AB:1 C:1",
                                              singular_values=(1.0, 2.0), rng=rng)
    data = model.sample(150, rng=rng)
    cov = data.sample_cov()
    edges = {}
    for c in (1e-3, 1.0):
        s_w = c * c * (cov - np.eye(120))
        _, scores = select_structure_schur(s_w, model.dims, c * c, 150)
        edges[c] = np.array([v["edge"] for v in scores.values()]) / (c * c)
    np.testing.assert_allclose(edges[1e-3], edges[1.0], rtol=1e-9)


@pytest.mark.parametrize("psi", [(1.0, 1.0, 1.0), (0.25, 4.0, 0.25)])
def test_conditioned_s_part_of_an_outside_block_is_noise(psi, rng):
    """A spike of O with no loading on S has an S-part of zero after debiasing.

    Given the data of O, the noise in ``S_W[S,O] u`` has covariance
    ``Psi_S mu / n`` (``mu = u^T S[O,O] u``), so ``||c||^2`` has mean
    ``tr(Psi_S) mu / (n l c^2)``, and for one view in S it is that times a
    chi-square over ``d_S`` degrees of freedom. Less that mean, the clipped S-part
    averages ``E max(X, 0)`` for a centred ``X`` of relative sd ``sqrt(2 / d_S)``:
    about 0.09 of the noise term at ``d_S = 40`` (0.02 to 0.3 over 40 draws, for any
    seed). The former correction ``d_S sigma^2 / (n l c^2)`` left about 0.97 of it;
    subtracting twice the noise would leave about 0; one ``sigma^2`` for unequal
    noise (0.25, 4, 0.25) leaves 0.6.
    """
    psi = np.asarray(psi)
    model = hs.HierarchicalFactorModel.random(
        (30, 40, 50), "AC:1", noise_var=tuple(psi), singular_values=(4.0, 5.0), rng=rng)
    d_s, d_o, n = 40, 80, 400
    s_rows, o_rows = np.arange(30, 70), np.r_[0:30, 70:120]
    psi_rows = np.repeat(psi, (30, 40, 50))
    sigma2 = float(np.mean(psi))
    equal = bool(np.all(psi == sigma2))
    ratios = []
    for _ in range(40):
        s_w = model.sample(n, rng=rng).sample_cov() - np.diag(psi_rows)
        # conditioning edge 3: above the noise bulk, below the spike (>= 16)
        _, k_o, _, s_part = _condition(s_w, s_rows, o_rows, sigma2, n, 3.0, d_s, d_o,
                                       None if equal else (d_s * psi[1], psi_rows))
        assert k_o == 1
        top = np.linalg.eigvalsh(s_w[np.ix_(o_rows, o_rows)])[-1]
        ell, c2 = debias_spikes(np.array([top]), sigma2, d_o, n)
        noise_term = d_s * psi[1] * (top + psi[0]) / (n * ell[0] * c2[0])
        ratios.append(s_part / noise_term)
    assert 0.02 < np.mean(ratios) < 0.3


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "known bias, not yet fixed (docs/convex.md section 8): the S-part of a spike "
    "conditioned on a wide O is normalised by l c^2, which over-counts it by "
    "(1 + gamma_O sigma^2 / l)^2; the fix changes the committed learner studies"))
def test_s_part_of_a_spike_conditioned_on_a_wide_outside_is_unbiased(rng):
    """The S-part estimate of a block seen through a wide O matches ``||W_S||^2``.

    ``S_W[S,O] u = X_S^T g sqrt(mu / n)`` along the unit sample score ``g`` of the spike,
    whose squared correlation with the latent is
    ``rho^2 = (1 - gamma sigma^4 / l^2) / (1 + sigma^2 / l)`` (``gamma = d_O / n``),
    so ``||S_W[S,O] u||^2 = ||w_S||^2 rho^2 mu`` plus noise ``d_S sigma^2 mu / n``, and
    ``rho^2 mu = l c^2 (1 + gamma sigma^2 / l)^2``. Here ``gamma = 8`` and
    ``l = 16 .. 25``: dividing by ``l c^2`` gives 1.70 - 2.27 times ``||w_S||^2``
    (mean of 20 draws; seeds 0 - 99); dividing by ``rho^2 mu`` gives 0.90 - 1.08
    (seeds 0 - 99; the standard error of the mean is about 0.035).
    """
    model = hs.HierarchicalFactorModel.random((40, 800), "AB:1", singular_values=(4.0, 5.0),
                                              rng=rng)
    s_true = float(np.sum(model.loadings[:40] ** 2))
    n, ratios = 100, []
    for _ in range(20):
        s_w = model.sample(n, rng=rng).sample_cov() - np.eye(840)
        # condition on the spike alone: the edge halfway between it (about 25 - 33)
        # and the top of the bulk of O (MP edge 13.6)
        top2 = np.linalg.eigvalsh(s_w[40:, 40:])[-2:]
        _, k_o, _, s_part = _condition(s_w, np.arange(40), np.arange(40, 840), 1.0, n,
                                       float(np.mean(top2)), 40, 800)
        assert k_o == 1
        ratios.append(s_part / s_true)
    assert 0.8 < np.mean(ratios) < 1.25
