"""``hcl-stats rates`` rebuilds every number from the committed replicate-level CSV."""

from __future__ import annotations

import json
import shutil

import pandas as pd

from hcl_stats.cli import main

RATES_STUDY = """
[study]
question = "Tiny rates study."
replications = 2
seed = 11
sampler = "wishart"
metrics = ["overall_gram", "structure_gram", "predicted_gram", "oracle_floor"]

[scenario]
dims = [5, 6, 7]
structure = "all:1"
noise_var = 0.5

[grid]
n_samples = [400, 3200]

[estimators.naive]
[estimators.masked_gradient]

[[report.rates]]
name = "rate_overall_vs_n"
metric = "overall_gram"
label = "overall"
x = "n_samples"
expected = -0.5
"""


def test_rates_rebuild_from_committed_replicates(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "rates_tiny.toml"
    cfg.write_text(RATES_STUDY)
    assert main(["run", str(cfg), "--jobs", "1"]) == 0
    out = tmp_path / "reports" / "rates_tiny"
    assert main(["report", str(cfg)]) == 0
    assert main(["rates", str(cfg)]) == 0
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {"rates.md", "rates.csv", "replicates.csv", "MANIFEST.json",
            "predicted_vs_measured.csv", "rate_predicted_vs_measured.png"} <= set(first)
    manifest = json.loads(first["MANIFEST.json"])
    names = {a["path"] for a in manifest["rates"]["artefacts"]}
    assert {"rates.md", "rates.csv", "rate_overall_vs_n.png"} <= names
    assert "summary" in manifest  # the report's entries are kept beside the rates'
    # without the store, the committed files alone give the same bytes
    shutil.rmtree(tmp_path / "_runs")
    for name in names:
        (out / name).unlink()
    assert main(["rates", str(cfg)]) == 0
    second = {p.name: p.read_bytes() for p in out.iterdir()}
    for name in ("rates.md", "rates.csv", "predicted_vs_measured.csv", "MANIFEST.json"):
        assert second[name] == first[name], name
    # a report rebuild (from the committed summary) keeps the rates entries
    assert main(["report", str(cfg)]) == 0
    assert (out / "MANIFEST.json").read_bytes() == first["MANIFEST.json"]
    # the prediction table pairs every predicted value with its measurement
    pred = pd.read_csv(out / "predicted_vs_measured.csv")
    assert set(pred["estimator"]) == {"naive", "masked_gradient"}
    assert set(pred.loc[pred["estimator"] == "naive", "label"]) == {"overall"}
    masked = set(pred.loc[pred["estimator"] == "masked_gradient", "label"])
    assert {"ABC", "AB", "A", "overall"} <= masked
    assert (pred["ratio"] - pred["predicted"] / pred["measured"]).abs().max() < 1e-4
