"""Block evidence: detection edge, calibrated test of r_S = 0, selection frequency."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import hcl_stats as hs
from hcl_stats._rmt import debias_spikes, mp_edge, spike_eigenvalue
from hcl_stats.block_evidence import (
    BlockEvidence,
    attach_evidence,
    block_evidence,
    detection_edge,
    selection_frequency,
)
from hcl_stats.exceptions import ValidationError

ALPHA = 0.05


# ------------------------------------------------------------------ the edge
@given(
    s2=st.floats(1e-3, 1e3),
    d=st.integers(1, 5000),
    n=st.integers(50, 10**6),
    k=st.integers(0, 40),
)
def test_edge_is_the_bbp_threshold_of_the_effective_sample(s2, d, n, k):
    # l = edge is exactly where the spiked-covariance map sends a spike to the
    # Marchenko-Pastur edge: (l + s2)(1 + gamma s2 / l) = s2 (1 + sqrt(gamma))^2
    edge = detection_edge(s2, d, n, k_outside=k)
    gamma = d / (n - 1 - k)
    assert edge == pytest.approx(s2 * np.sqrt(gamma), rel=1e-12)
    image = (edge + s2) * (1.0 + gamma * s2 / edge)
    assert image == pytest.approx(s2 * (1.0 + np.sqrt(gamma)) ** 2, rel=1e-9)
    assert float(spike_eigenvalue(edge, s2, gamma)) == pytest.approx(mp_edge(s2, gamma), rel=1e-9)
    # debiasing inverts the map above the edge, and sends the edge's image to it
    spike = 3.0 * edge
    mu = (spike + s2) * (1.0 + gamma * s2 / spike)
    ell, _ = debias_spikes(np.array([mu - s2]), s2, d, n - 1 - k)
    assert ell[0] == pytest.approx(spike, rel=1e-7)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0.0, 10, 100), "noise_var must be > 0"),
        ((1.0, 0, 100), "d_s must be >= 1"),
        ((1.0, 10, 1), "n_samples must be >= 2"),
        ((1.0, 10, 20, 19), "n_samples - 1 - k_outside must be >= 1"),
    ],
)
def test_edge_rejects_bad_input(args, match):
    with pytest.raises(ValidationError, match=match):
        detection_edge(*args)


# ----------------------------------------------------------- signal and power
def test_signal_estimates_the_population_spike_of_the_block(rng):
    # one shared block: A_ABC is W W^T (no conditioning, nothing below it), so the
    # debiased leading spike estimates the top eigenvalue of W W^T
    model = hs.HierarchicalFactorModel.random((10, 12, 14), "ABC:1", singular_values=(1.0, 1.5),
                                              rng=rng)
    data = model.sample(8000, rng=rng)
    fit = hs.estimators.SchurComplement().fit(data, structure="ABC:1")
    ev = block_evidence(data, fit, n_null=19, rng=rng)
    w = np.asarray(model.loadings)
    truth = float(np.linalg.eigvalsh(w @ w.T)[-1])
    row = ev.row("ABC")
    assert row.signal == pytest.approx(truth, rel=0.1)
    assert row.edge == pytest.approx(ev.noise_var * np.sqrt(36 / (8000 - 1)), rel=1e-12)
    assert row.ratio > 10
    assert row.p_value == pytest.approx(1 / 20)
    assert row.decision == "present"


def test_power_far_above_the_edge(rng):
    # every block 10x or more above its edge: each gets the smallest p-value
    model = hs.HierarchicalFactorModel.random((6, 7, 8), "ABC:1 AB:1 C:1",
                                              singular_values=(2.0, 3.0), rng=rng)
    data = model.sample(2000, rng=rng)
    fit = hs.estimators.SchurComplement().fit(data, structure="ABC:1 AB:1 C:1")
    ev = block_evidence(data, fit, n_null=19, rng=rng)
    for name in ("ABC", "AB", "C"):
        row = ev.row(name)
        assert row.ratio > 10, (name, row)
        assert row.p_value == pytest.approx(1 / 20)
        assert row.decision == "present"
        assert row.fitted_rank == 1


def _noise_views(rng, n=300, dims=(4, 5, 6), scale=2.0):
    x = scale * rng.standard_normal((n, sum(dims)))
    cuts = np.cumsum(dims)[:-1]
    return hs.MultimodalData(np.split(x, cuts, axis=1))


def test_size_under_pure_noise(rng):
    # Under Gaussian noise T_S = lambda_1(A_S) / sigma_hat^2 is scale free, so the
    # Monte Carlo p-value with B = 19 draws has level exactly 1/20 = alpha.
    from scipy.stats import binom

    reps, b = 100, 19
    rejections: dict[str, int] = {}
    for _ in range(reps):
        ev = block_evidence(_noise_views(rng, n=150), None, n_null=b, rng=rng)
        for row in ev.rows:
            rejections[row.name] = rejections.get(row.name, 0) + (row.p_value <= ALPHA)
    assert len(rejections) == 7
    # per block: a count that a level-alpha test exceeds with probability < 1e-5
    limit = binom.ppf(1 - 1e-5, reps, ALPHA)
    for name, k in rejections.items():
        assert k <= limit, (name, k)
    # pooled over the 7 (dependent) candidates: at most alpha + 4 SE of one block,
    # and not trivially conservative (at least alpha / 5)
    pooled = sum(rejections.values()) / (7 * reps)
    assert pooled <= ALPHA + 4.0 * np.sqrt(ALPHA * (1 - ALPHA) / reps)
    assert pooled >= ALPHA / 5


def test_p_values_are_uniform_under_pure_noise_in_one_block(rng):
    # exactness: P(p <= j / (B + 1)) = j / (B + 1) for the global block ABC
    reps, b = 80, 9
    p = np.array([block_evidence(_noise_views(rng, n=200), None, n_null=b, rng=rng)
                  .row("ABC").p_value for _ in range(reps)])
    grid = np.arange(1, b + 2) / (b + 1)
    emp = np.array([np.mean(p <= g + 1e-12) for g in grid])
    # Dvoretzky-Kiefer-Wolfowitz: P(sup |F_R - F| > e) <= 2 exp(-2 R e^2) = 1.2e-4
    assert np.max(np.abs(emp - grid)) <= 2.2 / np.sqrt(reps) + 1e-12


def test_heavy_tailed_noise_breaks_the_level(rng):
    # the other side of the exactness under Gaussian noise (docs/block_evidence.md
    # §3): isotropic multivariate-t rows (3 degrees of freedom) have a wider
    # sample spectrum than the Gaussian null, and the test rejects r_S = 0 for
    # most candidates (about 0.93 of them at these sizes) instead of 5%
    reps, dims, nu = 6, (4, 5, 6), 3
    rejected = []
    for _ in range(reps):
        x = rng.standard_normal((300, sum(dims)))
        x *= np.sqrt(nu / rng.chisquare(nu, size=(300, 1)))
        data = hs.MultimodalData(np.split(x, np.cumsum(dims)[:-1], axis=1))
        rejected += [row.p_value <= ALPHA for row in block_evidence(data, None, n_null=19, rng=rng).rows]
    assert np.mean(rejected) >= 0.5


@pytest.mark.slow
def test_size_with_other_blocks_present(rng):
    # a plug-in (parametric bootstrap) null: absent blocks beside real ones
    reps, b = 200, 19
    rejections: dict[str, int] = {}
    for _ in range(reps):
        model = hs.HierarchicalFactorModel.random((6, 7, 8), "AB:1 C:1",
                                                  singular_values=(1.0, 2.0), rng=rng)
        data = model.sample(400, rng=rng)
        fit = hs.estimators.SchurComplement().fit(data, structure="AB:1 C:1")
        for row in block_evidence(data, fit, n_null=b, rng=rng).rows:
            if row.fitted_rank == 0:
                rejections[row.name] = rejections.get(row.name, 0) + (row.p_value <= ALPHA)
    slack = 4.0 * np.sqrt(ALPHA * (1 - ALPHA) / reps)
    for name, k in rejections.items():
        assert k / reps <= ALPHA + slack, (name, k)


def test_below_the_edge_the_block_is_not_found(rng):
    # a spike at 0.3x the BBP edge leaves no eigenvalue outside the bulk: the
    # test keeps its level (rejects rarely), unlike far above the edge
    n, dims = 400, (5, 6, 7)
    edge = np.sqrt(sum(dims) / (n - 1))
    hits = 0
    reps = 25
    for _ in range(reps):
        u = rng.standard_normal(sum(dims))
        u *= np.sqrt(0.3 * edge) / np.linalg.norm(u)
        x = rng.standard_normal((n, 1)) * u + rng.standard_normal((n, sum(dims)))
        data = hs.MultimodalData(np.split(x, np.cumsum(dims)[:-1], axis=1))
        hits += block_evidence(data, None, n_null=19, rng=rng).row("ABC").p_value <= ALPHA
    assert hits / reps <= 0.4


# ------------------------------------------------------------------ frequency
def test_selection_frequency_is_one_on_strong_blocks_and_order_free(rng):
    model = hs.HierarchicalFactorModel.random((5, 6, 7), "ABC:1 B:1", singular_values=(2.0, 3.0),
                                              rng=rng)
    data = model.sample(3000, rng=rng)
    seed = int(rng.integers(2**32))
    ref = hs.Structure.parse("ABC:1 B:1")
    fr = selection_frequency(data, n_boot=6, rng=seed, reference=ref)
    assert fr.frequency(frozenset({0, 1, 2})) == 1.0
    assert fr.frequency(frozenset({1}), rank=1) == 1.0
    assert fr.exact == 6
    assert fr.failures == 0
    # resample b uses the b-th spawned seed: a prefix of a longer run is the same
    fr3 = selection_frequency(data, n_boot=3, rng=seed, reference=ref)
    assert fr3.exact == 3
    assert "| ABC | yes (1) | 1.00 | 1:6 |" in fr.to_markdown()


def test_selection_frequency_refits_a_configured_learner(rng):
    """A learner given as an estimator is re-fitted with its own options: on a shared
    block that the wide view B cannot see (tests/test_schur_select.py), the
    rule 'sharp' finds AB in every resample, where the default rule mostly finds A;
    the default estimator given as an instance is the named learner."""
    d_a, d_b, n = 40, 3200, 800  # subsamples of n / 2 = 400 distinct rows
    w = np.zeros((d_a + d_b, 1))
    for rows, norm2 in [(slice(0, d_a), 16.0), (slice(d_a, d_a + d_b), 2.4)]:
        v = rng.standard_normal(rows.stop - rows.start)
        w[rows, 0] = v / np.linalg.norm(v) * np.sqrt(norm2)
    model = hs.HierarchicalFactorModel((d_a, d_b), hs.Structure.parse("AB:1", n_views=2),
                                       w, 1.0)
    data = model.sample(n, rng=rng)
    sharp = selection_frequency(data, learner=hs.estimators.SchurSelect(rule="sharp"),
                                n_boot=3, resample="subsample", rng=rng)
    seed = int(rng.integers(2**32))
    named = selection_frequency(data, n_boot=3, resample="subsample", rng=seed)
    default = selection_frequency(data, learner=hs.estimators.SchurSelect(), n_boot=3,
                                  resample="subsample", rng=seed)
    assert sharp.frequency(frozenset({0, 1})) == 1.0
    assert sharp.frequency(frozenset({0})) == 0.0
    assert (named.blocks, named.rank_counts) == (default.blocks, default.rank_counts)
    assert (sharp.learner, named.learner, default.learner) == (
        "schur_select(rule='sharp')", "schur_select", "schur_select")


def test_evidence_statistic_follows_the_learners_edge_rule(rng):
    """With ``learner=SchurSelect(rule='sharp')`` the table's Schur complements are that
    rule's: on the leak design (a shared block below the wide view's BBP limit) the
    rule 'sharp' selects AB, not A, so AB's complement keeps its spike (signal > 0),
    where the default rule projects A's direction out of it (signal 0 in 97 of 100
    seeds)."""
    w = np.zeros((3240, 1))
    for rows, norm2 in [(slice(0, 40), 16.0), (slice(40, 3240), 2.4)]:
        v = rng.standard_normal(rows.stop - rows.start)
        w[rows, 0] = v / np.linalg.norm(v) * np.sqrt(norm2)
    model = hs.HierarchicalFactorModel((40, 3200), hs.Structure.parse("AB:1", n_views=2),
                                       w, 1.0)
    data = model.sample(400, rng=rng)
    est = hs.estimators.SchurSelect(rule="sharp")
    ev = block_evidence(data, est.fit(data), n_null=0, learner=est)
    assert ev.row("AB").fitted_rank == 1
    assert ev.row("AB").signal > 0


def test_bootstrap_is_not_calibrated_on_wide_noise_and_subsampling_is(rng):
    """Pure noise, d = (60, 80) > n = 100: a duplicated row of multinomial weight w adds
    an eigenvalue near w ||x||^2 / n, above the noise edge of the n/2 samples the
    learner is told, so bootstrap resamples select spurious blocks (5 of 10 on one
    data set, docs/block_evidence.md section 4); n/2 distinct rows are an exact
    sample of that size, and select none."""
    views = [rng.standard_normal((100, d)) for d in (60, 80)]
    seed = int(rng.integers(2**32))
    boot = selection_frequency(views, n_boot=10, resample="bootstrap", rng=seed)
    sub = selection_frequency(views, n_boot=10, resample="subsample", rng=seed)
    assert sub.blocks == ()
    assert boot.blocks != ()


def test_selection_frequency_counts_refusals(rng):
    def refuse(views, cov, dims, n_eff):
        raise hs.exceptions.NotIdentifiableError("no")

    fr = selection_frequency(_noise_views(rng), learner=refuse, n_boot=3, rng=rng)
    assert fr.failures == 3
    assert fr.blocks == ()
    assert fr.frequency(frozenset({0})) == 0.0


def test_evidence_table_in_every_renderer(rng):
    model = hs.HierarchicalFactorModel.random((4, 5, 6), "ABC:1 A:1", singular_values=(2.0, 3.0),
                                              rng=rng)
    data = model.sample(1500, rng=rng)
    fit = hs.estimators.SchurComplement().fit(data, structure="ABC:1 A:1")
    ev = block_evidence(data, fit, n_null=4, n_boot=2, rng=rng)
    assert isinstance(ev, BlockEvidence)
    assert len(ev.rows) == 7
    summary = attach_evidence(fit, ev).summary()
    text, md, tex, page = str(summary), summary.to_markdown(), summary.to_latex(), summary._repr_html_()
    for out in (text, md, tex, page):
        assert "Block evidence" in out
        assert "p-value" in out
        assert "freq (rank)" in out
    assert "| ABC | 1 |" in md
    assert "Block evidence" not in str(fit.summary())  # the original is unchanged


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": 0.0}, "alpha must be > 0"),
        ({"alpha": 1.5}, "alpha must be <= 1"),
        ({"n_null": -1}, "n_null must be >= 0"),
        ({"n_boot": 1, "learner": "nope"}, "learner must be one of"),
        ({"n_boot": 1, "learner": hs.estimators.SchurComplement()},
         "learner must learn the structure; got the estimator 'schur'"),
        ({"max_views": 2}, "M must be <= 2"),
    ],
)
def test_bad_arguments_raise_typed_errors(rng, kwargs, match):
    kwargs = dict(kwargs)  # the parametrized dict is shared by every seed of a sweep
    with pytest.raises(ValidationError, match=match):
        block_evidence(_noise_views(rng, n=50), None, n_null=kwargs.pop("n_null", 2), **kwargs)


def test_attach_evidence_rejects_other_objects(rng):
    fit = hs.estimators.SchurComplement().fit(_noise_views(rng), structure="ABC:1")
    with pytest.raises(ValidationError, match="evidence must be a BlockEvidence"):
        attach_evidence(fit, {"rows": []})


@pytest.mark.parametrize("n", [3, 12])
def test_null_draw_has_the_wishart_moments(rng, n):
    # E S = Sigma and Var S_ij = (s_ii s_jj + s_ij^2) / (n - 1), for Bartlett's
    # construction (n - 1 >= d) and for drawn rows (n - 1 < d)
    from hcl_stats.block_evidence import _draw_cov

    d = 5
    m = rng.standard_normal((d, d))
    sig = m @ m.T + np.eye(d)
    draws = np.array([_draw_cov(np.linalg.cholesky(sig), n, rng) for _ in range(6000)])
    var = (np.outer(np.diag(sig), np.diag(sig)) + sig**2) / (n - 1)
    se = np.sqrt(var / len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - sig) <= 5 * se)
    assert np.all(np.abs(draws.var(axis=0) / var - 1) <= 0.25)


def test_cli_fit_shows_evidence_when_asked_or_learned(tmp_path, capsys):
    from hcl_stats.cli import main

    model = hs.HierarchicalFactorModel.random((5, 6, 7), "ABC:1 C:1", singular_values=(2.0, 3.0),
                                              rng=0)
    data = model.sample(1000, rng=1)
    path = tmp_path / "views.npz"
    np.savez(path, a=data.Xs[0], b=data.Xs[1], c=data.Xs[2])
    out = tmp_path / "fit.npz"
    assert main(["fit", str(path), "--structure", "ABC:1 C:1", "--out", str(out)]) == 0
    assert "Block evidence" not in capsys.readouterr().out  # given structure: opt-in
    args = ["fit", str(path), "--structure", "ABC:1 C:1", "--out", str(out), "--evidence",
            "--null-draws", "19", "--bootstrap", "3", "--format", "markdown"]
    assert main(args) == 0
    md = capsys.readouterr().out
    assert "**Block evidence**" in md
    assert "3 bootstrap resamples" in md
    assert "| ABC | 1 |" in md
    assert main(["fit", str(path), "--estimator", "schur_select", "--out", str(out),
                 "--null-draws", "4"]) == 0  # learned structure: shown by default
    assert "Block evidence" in capsys.readouterr().out
    assert main(["fit", str(path), "--estimator", "schur_select", "--out", str(out),
                 "--no-evidence"]) == 0
    assert "Block evidence" not in capsys.readouterr().out


def test_partial_frequencies_are_prefixes_of_the_full_run(rng):
    model = hs.HierarchicalFactorModel.random((4, 5, 6), "ABC:1", singular_values=(0.3, 0.5),
                                              rng=rng)
    data = model.sample(300, rng=rng)
    seen = []
    full = selection_frequency(data, n_boot=4, rng=7, on_resample=seen.append)
    assert [fr.n_boot for fr in seen] == [1, 2, 3, 4]
    assert seen[-1] == full
    for k, partial in enumerate(seen[:-1], start=1):
        assert partial == selection_frequency(data, n_boot=k, rng=7)


def test_incomplete_data_is_refused_with_the_fix(rng):
    from hcl_stats.missing import IncompleteData

    data = _noise_views(rng, n=40)
    observed = np.ones((40, 3), dtype=bool)
    observed[:5, 1] = False
    with pytest.raises(ValidationError, match=r"35 complete rows of 40.*complete_cases"):
        block_evidence(IncompleteData.from_complete(data, observed), None, n_null=2)


def test_without_null_draws_only_signal_and_edge_are_reported(rng):
    model = hs.HierarchicalFactorModel.random((4, 5, 6), "ABC:1", singular_values=(2.0, 3.0),
                                              rng=rng)
    data = model.sample(800, rng=rng)
    fit = hs.estimators.SchurComplement().fit(data, structure="ABC:1")
    ev = block_evidence(data, fit, n_null=0)
    assert all(r.p_value is None and r.decision == "not tested" for r in ev.rows)
    assert ev.row("ABC").ratio > 10
    assert "not run (n_null = 0)" in str(ev)


def test_selection_frequency_drops_columns_constant_in_a_resample(rng):
    # a rare binary feature (one non-zero row of 400) is constant in about 37% of
    # bootstrap resamples; its zero variance must not make the learner refuse them
    from hcl_stats.block_evidence import selection_frequency

    model = hs.HierarchicalFactorModel.random((5, 6, 7), "ABC:1 B:1", singular_values=(2.0, 3.0),
                                              rng=rng)
    data = model.sample(400, rng=rng)
    rare = np.zeros((400, 1))
    rare[int(rng.integers(400))] = 1.0
    views = hs.MultimodalData([np.hstack([data.Xs[0], rare]), data.Xs[1], data.Xs[2]])
    fr = selection_frequency(views, learner="schur_select", n_boot=12, rng=rng)
    assert fr.failures == 0
    assert fr.frequency(frozenset({0, 1, 2})) == 1.0
    # a view that is constant in every resample is a refusal, with the reason
    flat = hs.MultimodalData([np.ones((400, 2)), data.Xs[1], data.Xs[2]])
    fr = selection_frequency(flat, learner="schur_select", n_boot=2, rng=rng)
    assert fr.failures == 2
    assert "constant columns" in fr.failure_messages[0]
