"""The idealised detection ceiling of docs/structure_learning.md §5.

The noise quantile is checked against direct draws of white sample covariances
(its false-positive rate is alpha), the Gaussian spike approximation against
direct draws of spiked ones, and the ceiling on both sides of the BBP threshold.
"""

from __future__ import annotations

import numpy as np
import pytest

import hcl_stats as hs
from hcl_stats.exceptions import ValidationError
from hcl_stats.theory.detection import (
    detection_ceiling,
    noise_top_quantile,
    spike_detection_probability,
)


def _top(rng, p, n, sims, spike=0.0):
    out = np.empty(sims)
    for i in range(sims):
        x = rng.standard_normal((n, p))
        x[:, 0] *= np.sqrt(1.0 + spike)
        out[i] = np.linalg.eigvalsh(x.T @ x / n)[-1] - 1.0
    return out


def test_noise_quantile_has_level_alpha(rng):
    # tridiagonal model vs dense draws: P(top > q_{0.1}) = 0.1 (binomial sd 0.009 over
    # 1200 draws; the quantile's own MC error from 3000 draws adds ~0.006)
    q = noise_top_quantile(10, 200, 0.1, sims=3000, rng=rng)
    rate = np.mean(_top(rng, 10, 200, 1200) > q)
    assert 0.055 < rate < 0.145


def test_noise_quantile_above_mp_edge_and_decreasing_in_alpha(rng):
    edge = (1 + np.sqrt(30 / 1000)) ** 2 - 1
    q_small = noise_top_quantile(30, 1000, 0.01, sims=1500, rng=rng)
    q_half = noise_top_quantile(30, 1000, 0.5, sims=1500, rng=rng)
    assert q_half < edge < q_small  # the TW median sits below the edge (mean -1.21)


@pytest.mark.parametrize("spike", [0.35, 0.6])
def test_spike_probability_matches_direct_draws(rng, spike):
    # the Gaussian approximation above the BBP threshold (sqrt(20/500) = 0.2);
    # measured 1-4 points optimistic nearest the threshold
    p, n = 20, 500
    thr = float(np.quantile(_top(rng, p, n, 600), 0.95))
    direct = np.mean(_top(rng, p, n, 600, spike) > thr)
    approx = float(spike_detection_probability([spike], p, n, thr)[0])
    assert abs(direct - approx) < 0.12


def test_spike_probability_zero_below_bbp_and_monotone():
    spikes = np.linspace(0.01, 3.0, 60)
    prob = spike_detection_probability(spikes, 50, 2000, 0.4)
    assert np.all(prob[spikes <= np.sqrt(50 / 2000)] == 0.0)
    assert np.all(np.diff(prob[spikes > np.sqrt(50 / 2000)]) >= 0)
    assert prob[-1] > 0.999


def test_ceiling_on_both_sides_of_the_edge(global_seed):
    strong = hs.HierarchicalFactorModel.random((20, 30, 40), "ABC:2 AB:2 C:2",
                                               singular_values=(2, 3), rng=global_seed)
    assert detection_ceiling(strong, 2000, sims=300, rng=global_seed) > 0.999
    # every spike below sqrt(d_S / n): nothing can be counted
    weak = hs.HierarchicalFactorModel.random((20, 30, 40), "ABC:2 AB:2 C:2",
                                             singular_values=(0.01, 0.05), rng=global_seed)
    assert detection_ceiling(weak, 2000, sims=300, rng=global_seed) == 0.0
    # more samples never lower it (same quantile draws per dimension)
    mid = hs.HierarchicalFactorModel.random((20, 30, 40), "ABC:2 AB:2 C:2",
                                            singular_values=(0.4, 0.8), rng=global_seed)
    c = [detection_ceiling(mid, n, sims=300, rng=global_seed) for n in (500, 5000, 50000)]
    assert c[0] <= c[1] + 0.02
    assert c[1] <= c[2] + 1e-12
    assert c[2] > 0.99


def test_conditioning_on_both_sides_of_its_condition(rng):
    # view A (6 coordinates) carries 5 latent columns: AB's 3 and A's 2, the latter
    # within 0.01 of the span of the former. Each block alone is strong, but W_A W_A^T
    # has a spike far below the BBP edge sqrt(6 / 400), so conditioning on A fails.
    w_ab = rng.standard_normal((46, 3))
    q, _ = np.linalg.qr(w_ab[:6, :2])  # an orthonormal basis inside AB's span on A
    w_a = 3.0 * q + 0.01 * rng.standard_normal((6, 2))
    w = np.zeros((46, 5))
    w[:, :3] = w_ab
    w[:6, 3:] = w_a
    crowded = hs.HierarchicalFactorModel((6, 40), hs.Structure.parse("AB:3 A:2", n_views=2), w, 1.0)
    assert np.linalg.svd(w[:6], compute_uv=False)[-1] ** 2 < np.sqrt(6 / 400)
    assert detection_ceiling(crowded, 400, sims=300, rng=1) > 0.9
    assert detection_ceiling(crowded, 400, sims=300, rng=1, conditioning=True) == 0.0
    # the same blocks with A's columns drawn freely: the requirement costs little
    w[:6, 3:] = 3 * rng.standard_normal((6, 2))
    roomy = hs.HierarchicalFactorModel((6, 40), hs.Structure.parse("AB:3 A:2", n_views=2), w, 1.0)
    if np.linalg.svd(w[:6], compute_uv=False)[-1] ** 2 > 1.0:
        assert detection_ceiling(roomy, 50000, sims=300, rng=1, conditioning=True) > 0.99


def test_ceiling_reproducible_and_checked():
    m = hs.HierarchicalFactorModel.random((10, 12), "AB:1 B:1", singular_values=(0.3, 0.5),
                                          rng=1)
    assert detection_ceiling(m, 800, sims=200, rng=3) == detection_ceiling(m, 800, sims=200,
                                                                         rng=3)
    with pytest.raises(ValidationError, match="alpha"):
        detection_ceiling(m, 800, alpha=1.5)
    with pytest.raises(ValidationError, match="n_samples"):
        noise_top_quantile(20, 10, 0.1)
    per_view = hs.HierarchicalFactorModel(m.dims, m.structure, m.loadings, np.array([1.0, 2.0]))
    with pytest.raises(ValidationError, match="noise_var"):
        detection_ceiling(per_view, 800)


_TINY = """
[study]
question = "ceiling report test"
kind = "structure_benchmark"
replications = 3
seed = 5
sampler = "data"
metrics = ["selection"]

[grid]
n_samples = [300, 3000]

[[grid.zip]]
design = ["random", "noise"]
singular_values = [[0.5, 1.5], [0.5, 1.5]]

[scenario]
dims = [8, 10]
p_present = 0.6

[estimators.schur_select]
name = "learn"
select = "schur_select"
"""


def test_ceiling_report_writes_only_its_two_files_reproducibly(tmp_path):
    from hcl_stats.cli import main
    from hcl_stats.theory.ceiling_report import cell_ceilings

    cfg = tmp_path / "tiny.toml"
    cfg.write_text(_TINY, encoding="utf-8")
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    for out in (out_a, out_b):
        assert main(["ceiling", str(cfg), "--out", str(out), "--sims", "200"]) == 0
    assert sorted(p.name for p in out_a.iterdir()) == ["ceiling.csv", "ceiling.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "tiny.toml"]
    assert (out_a / "ceiling.csv").read_bytes() == (out_b / "ceiling.csv").read_bytes()
    md_a, md_b = ((o / "ceiling.md").read_text(encoding="utf-8") for o in (out_a, out_b))
    assert md_a.replace(str(out_a), str(out_b)) == md_b  # only the rebuild line names --out
    from hcl_stats.study.config import load_study

    rows = cell_ceilings(load_study(cfg), sims=200)
    assert [(r["design"], r["n"]) for r in rows] == [("random, singular values U(0.5, 1.5)", 300),
                                                ("random, singular values U(0.5, 1.5)", 3000)]
    for r in rows:
        assert 0.0 <= r["conditioned"] <= r["isolated"] <= 1.0


def test_ceiling_report_refuses_another_kind(tmp_path):
    from hcl_stats.study.config import load_study
    from hcl_stats.theory.ceiling_report import cell_ceilings

    with pytest.raises(ValidationError, match="structure_benchmark"):
        cell_ceilings(load_study("simulations/quick.toml"))
