"""Efficiency and normalised excess beside the oracle floor (study metrics, issue 17 §2)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import hcl_stats as hs
from hcl_stats import estimators, theory
from hcl_stats.cli import main
from hcl_stats.metrics import overall_gram_error, structure_gram_errors
from hcl_stats.sampling import wishart_sample_cov
from hcl_stats.structure import format_block
from hcl_stats.study.registry import get_metric
from hcl_stats.study.tasks import limits_metrics
from hcl_stats.study.tasks.limits_metrics import cached_limits, efficiency_values


class _Ctx:
    def __init__(self, n, name="zero"):
        self.factors = {"n_samples": n}
        self.spec = type("Spec", (), {"name": name})()


def _fit(name, model, n, rng):
    cov = wishart_sample_cov(model, n, rng)
    return estimators.get(name)().fit_covariance(cov, dims=model.dims, n_samples=n,
                                                 structure=model.structure)


@given(
    floor=st.floats(0.01, 10.0), gap=st.floats(0.01, 10.0), err=st.floats(0.001, 30.0),
)
def test_efficiency_and_excess_closed_forms(floor, gap, err):
    gap = max(gap, 0.51 * floor)  # floor < 2/3 ||G||_F: the excess is recorded
    tab = {"S": {"oracle_floor": floor, "zero_error": floor + gap}}
    eff, exc = efficiency_values({"S": err}, tab)
    assert eff["S"] * err == pytest.approx(floor)
    assert exc["S"] * gap == pytest.approx(err - floor)
    # an estimator at the floor is efficient and has no excess; zero has excess 1
    eff0, exc0 = efficiency_values({"S": floor}, tab)
    assert eff0["S"] == pytest.approx(1.0)
    assert exc0["S"] == pytest.approx(0.0, abs=1e-12)
    assert efficiency_values({"S": floor + gap}, tab)[1]["S"] == pytest.approx(1.0)
    # a floor at or above ||G||_F (the oracle is worse than zero), or above 2/3 of it
    # (a near-zero denominator): no excess is recorded
    worse = {"S": {"oracle_floor": floor + gap, "zero_error": floor}}
    assert efficiency_values({"S": err}, worse)[1] == {}
    weak = {"S": {"oracle_floor": floor, "zero_error": floor * 1.49}}
    assert efficiency_values({"S": err}, weak)[1] == {}
    assert "S" in efficiency_values({"S": err}, worse)[0]  # the efficiency still is
    # labels without a floor (a learner's estimated structure) are skipped
    assert efficiency_values({"T": err}, tab) == ({}, {})


def test_zero_estimator_has_excess_one_and_the_truth_has_excess_minus_floor_ratio(rng):
    model = hs.HierarchicalFactorModel.random((8, 10, 12), "all:1", rng=rng)
    n = 4000
    ctx = _Ctx(n)
    zero = _fit("zero", model, n, rng)
    tab = theory.limits(model, n)
    rows = tab[tab["kind"] != "view_block"].set_index("block")
    eff = get_metric("efficiency").fn(zero, model, ctx)
    exc = get_metric("normalised_excess").fn(zero, model, ctx)
    assert set(eff) == set(rows.index)
    kept = rows[rows["oracle_floor"] <= 2 / 3 * rows["zero_error"]]
    assert len(kept) >= 4  # n = 4000: most rows have an informative floor
    assert set(exc) == set(kept.index)
    for label, row in rows.iterrows():
        # the zero estimator's error is ||G||_F: efficiency = floor / ||G||, excess = 1
        assert eff[label] == pytest.approx(row["oracle_floor"] / row["zero_error"], rel=1e-12)
    for label in kept.index:
        assert exc[label] == pytest.approx(1.0, rel=1e-12)
    # the truth itself: error 0, so no efficiency, excess = -floor / (||G|| - floor)
    exact = get_metric("normalised_excess").fn(model, model, ctx)
    assert get_metric("efficiency").fn(model, model, ctx) == {}
    for label, row in kept.iterrows():
        f, z = row["oracle_floor"], row["zero_error"]
        assert exact[label] == pytest.approx(-f / (z - f), rel=1e-12)


def test_efficiency_uses_the_data_only_errors(rng):
    model = hs.HierarchicalFactorModel.random((8, 10, 12), "all:1", rng=rng)
    n = 3000
    fit = _fit("naive", model, n, rng)
    eff = get_metric("efficiency").fn(fit, model, _Ctx(n, "naive"))
    errs = {format_block(b): v for b, v in structure_gram_errors(fit, model).items()}
    errs["overall"] = overall_gram_error(fit, model)
    table = cached_limits(model, n)
    for label, e in errs.items():
        assert eff[label] == pytest.approx(table[label]["oracle_floor"] / e, rel=1e-12)


def test_limits_are_computed_once_per_model_and_n(rng, monkeypatch):
    calls = []
    real = theory.limits

    def counting(model, n):
        calls.append(n)
        return real(model, n)

    monkeypatch.setattr(theory, "limits", counting)
    monkeypatch.setattr(limits_metrics, "_LIMITS_CACHE", limits_metrics.OrderedDict())
    model = hs.HierarchicalFactorModel.random((6, 7), "AB:1 A:1 B:1", rng=rng)
    fit = _fit("naive", model, 500, rng)
    for name in ("oracle_floor", "efficiency", "normalised_excess"):
        for _ in range(3):  # three estimators of one unit
            get_metric(name).fn(fit, model, _Ctx(500, "naive"))
    assert calls == [500]
    # an equal model held by another object shares the entry; another n does not
    copy = hs.HierarchicalFactorModel(model.dims, model.structure, np.array(model.loadings),
                                      model.noise_var)
    get_metric("efficiency").fn(fit, copy, _Ctx(500))
    get_metric("efficiency").fn(fit, copy, _Ctx(600))
    assert calls == [500, 600]


def test_oracle_floor_mean_is_the_mean_over_view_blocks(rng):
    model = hs.HierarchicalFactorModel.random((5, 6, 7), "ABC:1 AB:2 C:1", rng=rng)
    out = get_metric("oracle_floor").fn(None, model, _Ctx(800))
    tab = theory.limits(model, 800)
    pairs = tab[tab["kind"] == "view_block"]["oracle_floor"]
    assert out["mean"] == pytest.approx(pairs.mean(), rel=1e-12)
    assert out["spectral_limit"] == pytest.approx(tab["spectral_limit"].iloc[-1])


STUDY = """
[study]
question = "Tiny efficiency study."
replications = 3
seed = 5
sampler = "wishart"
metrics = ["structure_gram", "overall_gram", "oracle_floor", "efficiency", "normalised_excess"]

[scenario]
dims = [5, 6, 7]
structure = "all:1"
noise_var = 0.5

[grid]
n_samples = [2000]

[estimators.zero]
[estimators.schur]
"""


def test_study_summarises_both_ratios_with_mcse(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "eff.toml"
    cfg.write_text(STUDY)
    assert main(["run", str(cfg), "--jobs", "1"]) == 0
    assert main(["report", str(cfg)]) == 0
    summ = pd.read_csv(tmp_path / "reports" / "eff" / "summary.csv")
    exc = summ[(summ["metric"] == "normalised_excess") & (summ["estimator"] == "zero")]
    assert {"ABC", "overall"} <= set(exc["label"])
    assert np.allclose(exc["mean"], 1.0)
    assert np.allclose(exc["sd"], 0.0)
    eff = summ[(summ["metric"] == "efficiency") & (summ["estimator"] == "schur")]
    assert (eff["n_ok"] == 3).all()
    assert np.allclose(eff["mcse"], eff["sd"] / math.sqrt(3))
    assert (eff["mean"] > 0).all()
