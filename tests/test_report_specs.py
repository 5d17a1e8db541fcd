"""``[report]`` entries are parsed into typed specs and refused at validate time."""

from __future__ import annotations

import tomllib

import pytest
from _study_helpers import write_tiny

from hcl_stats.cli import main
from hcl_stats.exceptions import StudyConfigError
from hcl_stats.study import load_study
from hcl_stats.study.specs import FigureSpec, TableSpec

GOOD = """
[[report.figures]]
name = "err"
x = "n_samples"
metric = "overall_gram"
logy = true

[[report.tables]]
name = "tab"
metrics = ["overall_gram", "block_gram"]
group = "n_samples"
"""


def test_valid_report_becomes_typed_specs(tmp_path):
    study = load_study(write_tiny(tmp_path, extra=GOOD))
    (fig,) = study.report_spec.figures
    (tab,) = study.report_spec.tables
    assert fig == FigureSpec(
        name="err", x="n_samples", metric="overall_gram", logy=True
    )
    assert tab == TableSpec(
        name="tab", metrics=("overall_gram", "block_gram"), group="n_samples"
    )
    assert study.report["figures"][0] is fig.raw  # the renderers read the same table


@pytest.mark.parametrize(
    ("body", "match"),
    [
        # a metric the study does not compute (here: not even registered)
        (
            'name = "f"\nx = "n_samples"\nmetric = "no_such_metric"',
            r"report\.figures\[0\]\.metric must be a metric of study\.metrics",
        ),
        # a registered metric the study does not compute
        (
            'name = "f"\nx = "n_samples"\nmetric = "procrustes"',
            r"report\.figures\[0\]\.metric must be a metric of study\.metrics",
        ),
        (
            'name = "f"\nmetric = "overall_gram"',
            r"report\.figures\[0\]\.x must be given: a grid factor \(n_samples\)",
        ),
        (
            'name = "f"\nx = "latent_cov"\nmetric = "overall_gram"',
            r"report\.figures\[0\]\.x must be a grid factor \(n_samples\)",
        ),
        (
            'name = "f"\nx = "n_samples"\nmetric = "overall_gram"\nlogy = "yes"',
            r"report\.figures\[0\]\.logy must be true or false; got 'yes'",
        ),
        (
            'name = "f"\nx = "n_samples"\nmetric = "overall_gram"\nlogx = 1',
            r"report\.figures\[0\]\.logx must be true or false; got 1",
        ),
        (
            'name = "f"\nx = "n_samples"\nmetric = "overall_gram"\nerrorbar = "ci"',
            r"report\.figures\[0\]\.errorbar must be one of 'mcse', 'sd'",
        ),
        (
            'name = "f"\nx = "n_samples"\nmetric = "overall_gram"\ncolour = "red"',
            r"report\.figures\[0\]\.colour must be one of the keys",
        ),
        (
            'name = "f"\nx = "n_samples"\nmetric = "overall_gram"\n'
            'references = [{ metric = "procrustes", name = "r" }]',
            r"report\.figures\[0\]\.references\[0\]\.metric must be a metric of study\.metrics",
        ),
        (
            'name = "f"\nx = "n_samples"\nmetric = "overall_gram"\n'
            'references = [{ metric = "block_gram" }]',
            r"report\.figures\[0\]\.references\[0\]\.name must be a non-empty string; got None",
        ),
        (
            'name = "f"\nx = "n_samples"\nmetric = "overall_gram"\n'
            'references = [{ metric = "block_gram", name = "r", on = 3 }]',
            r"report\.figures\[0\]\.references\[0\]\.on must be a non-empty string; got 3",
        ),
        (
            'name = "f"\nx = "n_samples"\nmetric = "overall_gram"\n'
            'extra_panels = [{ metric = "block_gram", label = "mean", colour = "red" }]',
            r"report\.figures\[0\]\.extra_panels\[0\]\.colour must be one of the keys label, "
            r"metric",
        ),
        (
            'name = "f"\nx = "n_samples"\nmetric = "overall_gram"\nextra_panels = "overall"',
            r"report\.figures\[0\]\.extra_panels must be an array of tables",
        ),
    ],
)
def test_bad_figure_is_refused_by_validate(tmp_path, body, match):
    cfg = write_tiny(tmp_path, extra=f"[[report.figures]]\n{body}\n")
    with pytest.raises(StudyConfigError, match=match):
        load_study(cfg)
    assert main(["validate", str(cfg)]) == 2


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (
            'name = "t"\nmetrics = ["overall_gram", "sin_theta"]',
            r"report\.tables\[0\]\.metrics\[1\] must be a metric of study\.metrics",
        ),
        (
            'name = "t"\nmetrics = []',
            r"report\.tables\[0\]\.metrics must be a non-empty list",
        ),
        (
            'name = "t"\nmetrics = ["overall_gram"]\nstat = "median"',
            r"report\.tables\[0\]\.stat must be one of 'mean_sd', 'mean_mcse', 'mean'",
        ),
        (
            'name = "t"\nmetrics = ["overall_gram"]\ndigits = -1',
            r"report\.tables\[0\]\.digits must be an integer in 0\.\.12",
        ),
        (
            'name = "t"\nmetrics = ["overall_gram"]\ngroup = "dims"',
            r"report\.tables\[0\]\.group must be a grid factor",
        ),
        (
            'name = "t"\nmetrics = ["overall_gram"]\n'
            'reference_columns = [{ metric = "oracle_floor", name = "floor" }]',
            r"report\.tables\[0\]\.reference_columns\[0\]\.metric must be a metric of "
            r"study\.metrics",
        ),
    ],
)
def test_bad_table_is_refused_by_validate(tmp_path, body, match):
    cfg = write_tiny(tmp_path, extra=f"[[report.tables]]\n{body}\n")
    with pytest.raises(StudyConfigError, match=match):
        load_study(cfg)


def test_unknown_report_section_is_refused(tmp_path):
    cfg = write_tiny(tmp_path, extra='[[report.plots]]\nname = "p"\n')
    with pytest.raises(StudyConfigError, match=r"report\.plots must be one of figures"):
        load_study(cfg)


def test_every_committed_study_has_a_valid_report():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "simulations"
    for cfg in sorted(root.glob("*.toml")):
        if "limits" in tomllib.loads(cfg.read_text()):
            continue  # the input of `hcl-stats limits`, not a study
        spec = load_study(cfg).report_spec
        assert all(f.x and f.metric for f in spec.figures), cfg
