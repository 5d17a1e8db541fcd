"""summary.csv statistics, tables, figures, MANIFEST.json and byte-identical reruns."""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest
from _study_helpers import write_tiny

from hcl_stats.cli import main
from hcl_stats.study import load_study
from hcl_stats.tables import format_value, label_sort_key, render_table

pd = pytest.importorskip("pandas")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]

REPORT = """
[[report.figures]]
name = "err_vs_n"
x = "n_samples"
metric = "block_gram"
labels = ["mean", "A|ABC"]
errorbar = "sd"
logx = true
logy = true
reference_slope = -0.5

[[report.tables]]
name = "tab"
metrics = ["structure_gram", "overall_gram"]
group = "n_samples"
stat = "mean_sd"
digits = 3
caption = "Test table."
"""


@pytest.fixture
def ran(tmp_path):
    cfg = write_tiny(tmp_path, reps=3, ns="[50, 200]")
    cfg.write_text(cfg.read_text() + REPORT)
    db, out = tmp_path / "s.sqlite", tmp_path / "rep"
    assert main(["run", str(cfg), "--jobs", "1", "--store", str(db), "--quiet"]) == 0
    return cfg, db, out


def _hashes(out):
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.iterdir())
    }


def test_summary_statistics_match_the_store(ran):
    cfg, db, out = ran
    assert main(["summarize", str(cfg), "--store", str(db), "--out", str(out)]) == 0
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns[:2]) == ["cell_id", "n_samples"]
    tidy = main(
        ["export", str(cfg), "--store", str(db), "--out", str(out.parent / "t.csv")]
    )
    assert tidy == 0
    raw = pd.read_csv(out.parent / "t.csv")
    row = summary[
        (summary.metric == "overall_gram")
        & (summary.estimator == "schur")
        & (summary.n_samples == 50)
    ].iloc[0]
    vals = raw[
        (raw.metric == "overall_gram")
        & (raw.estimator == "schur")
        & (raw.n_samples == 50)
    ]["value"].to_numpy()
    assert row.n_ok == 3
    assert row.n_failed == 0
    # summary.csv keeps 6 significant digits: relative rounding error <= 5e-6
    assert row["mean"] == pytest.approx(vals.mean(), rel=5e-6)
    assert row["sd"] == pytest.approx(vals.std(ddof=1), rel=5e-6)
    assert row["mcse"] == pytest.approx(vals.std(ddof=1) / math.sqrt(3), rel=5e-6)
    assert row["median"] == pytest.approx(np.median(vals), rel=5e-6)
    assert not summary.duplicated(["cell_id", "estimator", "metric", "label"]).any()
    # 3 views x 7 structures of "all:1" -> 12 (view, block) labels plus the mean; the
    # structure-blind naive fit also gets the 9 off-block (view, block) pairs (m not in S)
    n_block = summary[
        (summary.metric == "block_gram")
        & (summary.estimator == "naive")
        & (summary.n_samples == 50)
    ]
    assert len(n_block) == 13 + 9
    s_block = summary[
        (summary.metric == "block_gram")
        & (summary.estimator == "schur")
        & (summary.n_samples == 50)
    ]
    assert len(s_block) == 13


def test_report_is_byte_identical_and_manifest_is_consistent(ran):
    cfg, db, out = ran
    assert main(["report", str(cfg), "--store", str(db), "--out", str(out)]) == 0
    first = _hashes(out)
    assert {
        "summary.csv",
        "err_vs_n.pdf",
        "err_vs_n.png",
        "tab.tex",
        "tab.md",
        "MANIFEST.json",
    } <= set(first)
    assert main(["report", str(cfg), "--store", str(db), "--out", str(out)]) == 0
    assert _hashes(out) == first
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest["summary"]["sha256"] == first["summary.csv"]
    for art in manifest["artefacts"]:
        assert first[art["path"]] == art["sha256"]
        assert art["summary_sha256"] == first["summary.csv"]
    # reports are a function of summary.csv alone: works without the store
    db.rename(db.with_suffix(".moved"))
    (out / "tab.md").unlink()
    assert main(["report", str(cfg), "--store", str(db), "--out", str(out)]) == 0
    assert _hashes(out) == first


def test_summary_csv_is_identical_for_a_second_run_from_scratch(ran, tmp_path):
    """Committed summaries do not change when a study is rerun (no timings, no float noise)."""
    cfg, db, out = ran
    assert main(["summarize", str(cfg), "--store", str(db), "--out", str(out)]) == 0
    db2, out2 = tmp_path / "again.sqlite", tmp_path / "again"
    assert main(["run", str(cfg), "--jobs", "1", "--store", str(db2), "--quiet"]) == 0
    assert main(["summarize", str(cfg), "--store", str(db2), "--out", str(out2)]) == 0
    text = (out / "summary.csv").read_text()
    assert (out2 / "summary.csv").read_text() == text
    summary = pd.read_csv(out / "summary.csv")
    assert "wall_time" not in set(
        summary.metric
    )  # measured, but not reported: left out
    assert "converged" in set(summary.metric)
    for value in summary["mean"].dropna():
        assert float(f"{value:.6g}") == value


def test_reported_timings_stay_in_the_summary(ran):
    cfg, db, out = ran
    cfg.write_text(
        cfg.read_text()
        + """
[[report.tables]]
name = "time"
metrics = ["wall_time"]
"""
    )
    assert main(["summarize", str(cfg), "--store", str(db), "--out", str(out)]) == 0
    summary = pd.read_csv(out / "summary.csv")
    assert (summary.metric == "wall_time").sum() > 0


def test_report_resummarizes_a_stale_summary(ran, capsys):
    cfg, db, out = ran
    text = cfg.read_text()
    cfg.write_text(
        text[: text.index("[[report.figures]]")]
        + text[text.index("[[report.tables]]") :]
    )
    assert main(["report", str(cfg), "--store", str(db), "--out", str(out)]) == 0
    assert not (out / "err_vs_n.pdf").exists()
    before = (out / "summary.csv").read_text()
    cfg.write_text(cfg.read_text().replace("replications = 3", "replications = 4"))
    assert main(["run", str(cfg), "--jobs", "1", "--store", str(db), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["report", str(cfg), "--store", str(db), "--out", str(out)]) == 0
    assert "re-summarized" in capsys.readouterr().out
    after = (out / "summary.csv").read_text()
    assert after != before
    assert ",4,0," in after


def test_report_without_store_or_summary_is_a_usage_error(tmp_path, capsys):
    cfg = write_tiny(tmp_path)
    assert (
        main(
            [
                "report",
                str(cfg),
                "--store",
                str(tmp_path / "x.sqlite"),
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 2
    )
    assert "first" in capsys.readouterr().err


def test_table_rendering_and_rounding(ran):
    cfg, db, out = ran
    assert main(["summarize", str(cfg), "--store", str(db), "--out", str(out)]) == 0
    summary = pd.read_csv(out / "summary.csv", dtype={"label": str})
    study = load_study(cfg)
    latex, md = render_table(summary, study.report["tables"][0], list(study.estimators))
    for rule in (r"\toprule", r"\midrule", r"\bottomrule", r"\cmidrule"):
        assert rule in latex
    assert r"$\pm$" in latex
    assert "±" in md
    assert md.splitlines()[0].startswith("| metric | label | n_samples=50 naive")
    labels = [
        line.split("|")[2].strip()
        for line in md.splitlines()[2:]
        if line.startswith("|")
    ]
    assert labels == ["ABC", "AB", "AC", "BC", "A", "B", "C", "overall"]
    assert format_value(1.23456, 2) == "1.23"
    assert format_value(float("nan"), 2) == "--"
    assert sorted(["mean", "A|A", "A|ABC", "B|AB"], key=label_sort_key) == [
        "A|ABC",
        "A|A",
        "B|AB",
        "mean",
    ]


def test_figure_has_labelled_axes_and_legend(ran):
    from hcl_stats.plotting import estimator_style, line_figure
    from hcl_stats.study.report import read_summary, write_summary

    cfg, db, out = ran
    study = load_study(cfg)
    path, _ = write_summary(study, db, out)
    spec = study.report["figures"][0]
    fig = line_figure(
        read_summary(path), spec, list(study.estimators), notation="$E$", unit=""
    )
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2
    for k, ax in enumerate(axes):
        assert "sample size $n$" in ax.get_xlabel()
        assert ax.get_ylabel() == ("$E$" if k == 0 else "")  # shared: left column only
        assert ax.get_xscale() == "log"
        assert ax.get_yscale() == "log"
    assert len(fig.legends) == 1
    names = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "1 sd" in fig.legends[0].get_title().get_text()  # spec: errorbar = "sd"
    assert {
        "naive PCA",
        "Schur (joint)",
        "Schur (view-diagonal)",
        "masked gradient",
    } <= set(names)
    assert (
        estimator_style("schur", ["x"])[0]
        == estimator_style("schur", ["schur", "y"])[0]
    )
    # the legend sits below every axes (off the data)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    legend_box = fig.legends[0].get_window_extent()
    for ax in axes:
        assert legend_box.y1 <= ax.get_window_extent().y0


@pytest.mark.parametrize(
    "config",
    sorted(
        p.name
        for p in (ROOT / "simulations").glob("*.toml")
        # limits.toml is the input of `hcl-stats limits`, not a study
        if "limits" not in tomllib.loads(p.read_text())
    ),
)
def test_every_estimator_of_a_study_has_its_own_style(config):
    from hcl_stats.plotting import estimator_style

    study = load_study(ROOT / "simulations" / config)
    order = list(study.estimators)
    styles = [estimator_style(e, order) for e in order]
    assert len({s.colour for s in styles}) == len(order)
    assert len({s.marker for s in styles}) == len(order)
    assert len({s.name for s in styles}) == len(order)
    assert all(s.name for s in styles)
    # the same label has the same style in every study
    for e, s in zip(order, styles, strict=True):
        assert estimator_style(e, ["other", e]) == s


def test_sixteen_unknown_estimators_get_sixteen_styles():
    from hcl_stats.plotting import estimator_style

    order = [f"method_{i}" for i in range(16)]
    styles = [estimator_style(e, order) for e in order]
    assert len({(s.colour, s.marker) for s in styles}) == 16
    assert len({s.colour for s in styles}) == 16


def test_varying_non_x_factor_gets_its_own_panels():
    """Two cells at one x (e.g. two signal strengths) are never joined by one line."""
    from hcl_stats.plotting import line_figure

    rows = []
    for sv in ("[0.5, 1.5]", "[1.0, 2.0]"):
        for n in (100, 1000):
            rows.append(
                {
                    "cell_id": f"{sv}{n}",
                    "n_samples": n,
                    "singular_values": sv,
                    "estimator": "schur",
                    "metric": "rank",
                    "label": "exact",
                    "n_ok": 4,
                    "n_failed": 0,
                    "mean": 0.5 if sv[1] == "0" else 0.9,
                    "sd": 0.1,
                    "mcse": 0.05,
                    "median": 0.5,
                }
            )
    fig = line_figure(
        pd.DataFrame(rows),
        {"x": "n_samples", "metric": "rank", "labels": ["exact"]},
        ["schur"],
    )
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2
    assert [
        "singular values = [0.5, 1.5]" in axes[0].get_title(),
        "singular values = [1.0, 2.0]" in axes[1].get_title(),
    ] == [True, True]
    for ax, level in zip(axes, (0.5, 0.9), strict=True):
        (bars,) = ax.containers  # one errorbar series per panel, one cell each
        assert list(bars.lines[0].get_ydata()) == [level, level]


def test_table_with_groups_as_row_blocks(ran):
    cfg, db, out = ran
    assert main(["summarize", str(cfg), "--store", str(db), "--out", str(out)]) == 0
    summary = pd.read_csv(out / "summary.csv", dtype={"label": str})
    study = load_study(cfg)
    spec = {
        **study.report["tables"][0],
        "group_axis": "rows",
        "labels": {"structure_gram": ["A", "ABC"]},
    }
    latex, md = render_table(summary, spec, list(study.estimators))
    head = md.splitlines()[0]
    assert (
        head == "| metric | label | naive | schur | schur_per_view | masked_gradient |"
    )
    assert md.count("**n_samples = 50**") == 1
    assert md.count("**n_samples = 200**") == 1
    body = [line.split("|")[2].strip() for line in md.splitlines() if "Gram" in line]
    assert body == ["A", "ABC", "overall"] * 2
    assert (
        r"\multicolumn{5}{l}{$n = 50$}" in latex
    )  # group heading: notation, not the key
    with pytest.raises(ValueError, match="group_axis"):
        render_table(
            summary, {**spec, "group_axis": "diagonal"}, list(study.estimators)
        )


def test_table_estimator_selection_sets_the_columns(ran):
    cfg, db, out = ran
    assert main(["summarize", str(cfg), "--store", str(db), "--out", str(out)]) == 0
    summary = pd.read_csv(out / "summary.csv", dtype={"label": str})
    study = load_study(cfg)
    spec = {
        **study.report["tables"][0],
        "group_axis": "rows",
        "estimators": ["schur", "naive"],
    }
    _, md = render_table(summary, spec, list(study.estimators))
    assert md.splitlines()[0] == "| metric | label | schur | naive |"


def _reference_summary():
    """overall_gram of two estimators and a truth-only oracle_floor recorded by both."""
    rows = []
    for n, floor, spec in ((100, 2.0, 3.0), (1000, 0.7, 1.1)):
        for est, err in (("naive", 4.0), ("schur", 3.0)):
            base = {
                "cell_id": str(n),
                "n_samples": n,
                "estimator": est,
                "n_ok": 4,
                "n_failed": 0,
                "sd": 0.1,
                "mcse": 0.05,
                "median": 0.0,
            }
            rows.append(
                {**base, "metric": "block_gram", "label": "mean", "mean": err / n}
            )
            rows.append(
                {**base, "metric": "overall_gram", "label": "overall", "mean": err}
            )
            # the schur rows differ by 0.2 (a failed replicate): the line is their mean
            bump = 0.2 if est == "schur" else 0.0
            rows.append(
                {
                    **base,
                    "metric": "oracle_floor",
                    "label": "overall",
                    "mean": floor + bump,
                }
            )
            rows.append(
                {**base, "metric": "oracle_floor", "label": "mean", "mean": floor / n}
            )
            rows.append(
                {
                    **base,
                    "metric": "oracle_floor",
                    "label": "spectral_limit",
                    "mean": spec,
                }
            )
    return pd.DataFrame(rows)


def test_figure_reference_lines_and_extra_panel():
    from hcl_stats.plotting import line_figure

    spec = {
        "x": "n_samples",
        "metric": "block_gram",
        "labels": ["mean"],
        "logx": True,
        "extra_panels": [{"metric": "overall_gram", "label": "overall"}],
        "references": [
            {"metric": "oracle_floor", "name": "oracle floor"},
            {
                "metric": "oracle_floor",
                "label": "spectral_limit",
                "on": "overall",
                "name": "spectral limit",
            },
        ],
    }
    fig = line_figure(_reference_summary(), spec, ["naive", "schur"])
    left, right = [ax for ax in fig.axes if ax.get_visible()]
    assert right.get_title() == "overall"
    assert "mean over the blocks" in left.get_title()
    assert right.get_ylabel() != ""  # another metric: its own axis title

    def lines(ax):
        return {
            ln.get_label(): list(ln.get_ydata())
            for ln in ax.get_lines()
            if ln.get_label() in ("oracle floor", "spectral limit")
        }

    assert lines(left) == {"oracle floor": [pytest.approx(0.02), pytest.approx(0.0007)]}
    assert lines(right) == {
        "oracle floor": [pytest.approx(2.1), pytest.approx(0.8)],
        "spectral limit": [3.0, 1.1],
    }
    names = [t.get_text() for t in fig.legends[0].get_texts()]
    assert names.count("oracle floor") == 1
    assert "spectral limit" in names


def test_table_reference_column():
    summary = _reference_summary()
    spec = {
        "name": "t",
        "metrics": ["overall_gram", "block_gram"],
        "group": "n_samples",
        "group_axis": "rows",
        "stat": "mean",
        "digits": 2,
        "reference_columns": [{"metric": "oracle_floor", "name": "floor"}],
    }
    latex, md = render_table(summary, spec, ["naive", "schur"])
    lines = md.splitlines()
    assert lines[0] == "| metric | label | floor | naive | schur |"
    assert "| overall Gram error | overall | 2.10 | 4.00 | 3.00 |" in lines
    assert "| overall Gram error | overall | 0.80 | 4.00 | 3.00 |" in lines
    assert r"floor & naive & schur \\" in latex
    with pytest.raises(ValueError, match="reference column name 'naive'"):
        render_table(
            summary,
            {
                **spec,
                "reference_columns": [{"metric": "oracle_floor", "name": "naive"}],
            },
            ["naive", "schur"],
        )
