"""The committed text artefacts under ``reports/`` rebuild byte-identically.

Every table of a study's ``[report]`` is rendered again from the committed
``summary.csv``, and every ``hcl-stats rates`` output from the committed
``replicates.csv``, and compared byte for byte with the committed file. The
figures are left to the full rebuild (see ``docs/architecture.md``): they take
minutes, and their bytes also depend on the matplotlib and fontTools versions.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pandas")

ROOT = Path(__file__).resolve().parents[1]
STUDIES = sorted(
    p.name for p in (ROOT / "reports").iterdir()
    if (p / "summary.csv").exists() and (ROOT / "simulations" / f"{p.name}.toml").exists()
)
RATES = [name for name in STUDIES if (ROOT / "reports" / name / "replicates.csv").exists()]
FAST_RATES = "downstream_vs_n"  # ~10 s; the other rates rebuilds take 12-40 s each


def test_the_committed_studies_are_found():
    assert {"quick", "missing_views", "rates", "paper_table"} <= set(STUDIES)
    assert {"rates", "downstream_vs_m"} <= set(RATES)


@pytest.mark.parametrize("name", STUDIES)
def test_committed_tables_rebuild_byte_identically(name):
    from hcl_stats.study.config import load_study
    from hcl_stats.study.report import default_report, read_summary
    from hcl_stats.tables import render_table

    study = load_study(ROOT / "simulations" / f"{name}.toml")
    summary = read_summary(ROOT / "reports" / name / "summary.csv")
    spec = study.report or default_report(study)
    assert spec.get("tables"), name
    for tab in spec["tables"]:
        latex, markdown = render_table(summary, tab, list(study.estimators))
        for suffix, text in ((".tex", latex), (".md", markdown)):
            committed = ROOT / "reports" / name / f"{tab['name']}{suffix}"
            assert text == committed.read_text(), committed.relative_to(ROOT)


@pytest.mark.parametrize(
    "name",
    [n if n == FAST_RATES else pytest.param(n, marks=pytest.mark.slow) for n in RATES],
)
def test_committed_rates_rebuild_byte_identically(name, tmp_path, monkeypatch):
    import shutil

    import matplotlib

    from hcl_stats.study.config import load_study
    from hcl_stats.theory.rates_data import REPLICATES, load_replicates
    from hcl_stats.theory.rates_report import write_rates_report

    matplotlib.use("Agg")
    study = load_study(ROOT / "simulations" / f"{name}.toml")
    committed = ROOT / "reports" / name
    shutil.copy(committed / REPLICATES, tmp_path / REPLICATES)
    tidy = load_replicates(study, tmp_path / "no-store.sqlite", tmp_path)
    for path in write_rates_report(study, tidy, tmp_path):
        if path.suffix in (".md", ".csv"):
            assert path.read_bytes() == (committed / path.name).read_bytes(), path.name


def test_shrinkage_numbers_rebuild_from_the_committed_replicates(tmp_path, monkeypatch):
    """``numbers.md`` needs replicate-level values; the committed CSV suffices."""
    import importlib.util
    import shutil

    spec = importlib.util.spec_from_file_location(
        "shrinkage_numbers", ROOT / "simulations" / "shrinkage_numbers.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = ROOT / "reports" / "shrinkage_paper"
    shutil.copy(committed / module.REPLICATES, tmp_path / module.REPLICATES)
    monkeypatch.chdir(ROOT)  # the config path is printed as given
    code = module.main([
        "simulations/shrinkage_paper.toml", "--store", str(tmp_path / "none.sqlite"),
        "--out", str(tmp_path),
    ])
    assert code == 0
    assert (tmp_path / "numbers.md").read_bytes() == (committed / "numbers.md").read_bytes()


def _refit(est):
    """The estimator whose shrinkage a study's rows record: the refit of a learner."""
    if getattr(est, "name", None) == "learn":
        return est._refit_estimator()
    return est


@pytest.mark.parametrize("name", STUDIES)
def test_committed_rows_of_masked_shrink_pin_one_weight_per_component(name):
    # The committed rows of masked_shrink (as an estimator, or as the refit of the
    # learn estimator) were computed with one shrinkage weight per component, the
    # default before 2026-12-08. A config without the pin would rerun them with
    # view weights and no longer reproduce the committed summary.
    from hcl_stats.estimators import MaskedShrink
    from hcl_stats.study.config import load_study

    study = load_study(ROOT / "simulations" / f"{name}.toml")
    for label, spec in study.estimators.items():
        est = _refit(spec.build())
        if isinstance(est, MaskedShrink):
            assert est.view_weights is False, f"{name}: estimator {label!r}"
