"""Reports of a study as library functions: summary.csv, figures, tables, MANIFEST.json.

``hcl-stats summarize`` and ``hcl-stats report`` (:mod:`hcl_stats.cli.study`)
call :func:`write_summary` and :func:`build_report`; tests and notebooks can call
them directly. Reports are a pure function of ``summary.csv``: rerunning writes
the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .._metric_info import METRICS, axis_label
from ..exceptions import StudyConfigError
from ..tables import SUMMARY_DIGITS, round_significant
from .registry import get_metric
from .specs import is_safe_name
from .store import ResultStore
from .summary import summarize

__all__ = [
    "SUMMARY_DIGITS",
    "TIMING_METRICS",
    "build_report",
    "default_report",
    "inside",
    "metric_axis",
    "read_summary",
    "reported_metrics",
    "round_significant",
    "sha256_file",
    "summary_text",
    "write_summary",
]


def metric_axis(name: str) -> tuple[str, str]:
    """Axis ``(notation, unit)`` of a registered metric.

    :mod:`hcl_stats._metric_info` is the source for every metric it lists; a
    metric registered elsewhere keeps the notation and unit it was registered with.

    Examples
    --------
    >>> import hcl_stats.study
    >>> metric_axis("wall_time")
    ('fit wall time (s)', '')
    """
    m = get_metric(name)
    return (axis_label(m.name), "") if m.name in METRICS else (m.notation, m.unit)


def inside(out_dir: Path, name: Any, suffix: str = "") -> Path:
    """``out_dir / (name + suffix)``, refused unless it resolves inside ``out_dir``.

    The names are checked when the study is loaded (:func:`hcl_stats.study.is_safe_name`);
    this second check at write time also covers names that reach here otherwise
    (e.g. through a symlink planted in the output directory).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from hcl_stats.study.report import inside
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     print(inside(Path(tmp), "errors", ".csv").name)
    ...     try:
    ...         inside(Path(tmp), "../escape")
    ...     except ValueError:
    ...         print("refused")
    errors.csv
    refused
    """
    if not is_safe_name(name):
        raise StudyConfigError(
            f"a report name must be a file name of letters, digits, '_', '.' or '-' "
            f"that does not start with '.'; got {name!r}."
        )
    root = out_dir.resolve()
    target = (out_dir / f"{name}{suffix}").resolve()
    if target.parent != root:
        raise StudyConfigError(
            f"report file {name!r} must resolve inside the output directory {root}; "
            f"got {target}."
        )
    return out_dir / f"{name}{suffix}"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from hcl_stats.study.report import sha256_file
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "empty"
    ...     _ = path.write_bytes(b"")
    ...     print(sha256_file(path)[:16])  # sha256 of no bytes
    e3b0c44298fc1c14
    """
    return hashlib.sha256(path.read_bytes()).hexdigest()


#: Wall-clock metrics: they differ on every run, so ``summary.csv`` keeps them only
#: when the study's report shows them (a figure or table of the metric).
TIMING_METRICS = ("wall_time",)


def reported_metrics(study: Any) -> set[str]:
    """The metrics a figure or table of the study's report shows.

    Examples
    --------
    >>> import tomllib
    >>> from pathlib import Path
    >>> from hcl_stats.study.config import parse_study
    >>> path = Path("simulations/quick.toml")
    >>> study = parse_study(tomllib.loads(path.read_text()), path)
    >>> from hcl_stats.study.report import reported_metrics
    >>> {"block_gram", "overall_gram"} <= reported_metrics(study)
    True
    """
    spec = study.report or default_report(study)
    used = {f.get("metric") for f in spec.get("figures", [])}
    for t in spec.get("tables", []):
        used |= set(t.get("metrics", []))
    return used


def summary_text(study: Any, summary: Any) -> str:
    """The ``summary.csv`` text of ``summary``: deterministic for the same results.

    Statistics are rounded to :data:`SUMMARY_DIGITS` significant digits, and the
    wall-clock metrics (:data:`TIMING_METRICS`) are left out unless the report
    shows them, so rerunning a study rewrites no committed byte.
    """
    keep = reported_metrics(study)
    drop = [m for m in TIMING_METRICS if m not in keep]
    summary = summary[~summary["metric"].isin(drop)].copy()
    for col in ("mean", "sd", "mcse", "median"):
        summary[col] = summary[col].astype(float).map(round_significant)
    return summary.to_csv(index=False, lineterminator="\n")


def write_summary(study: Any, store_path: Path, out_dir: Path) -> tuple[Path, bool]:
    """Summarize the store into ``out_dir/summary.csv``; return (path, changed).

    The text is :func:`summary_text` (rounded, timings only when reported).
    """
    with ResultStore(store_path, readonly=True) as store:
        store.check_study(study)
        summary = summarize(study, store)
    text = summary_text(study, summary)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "summary.csv"
    if path.exists() and path.read_text() == text:
        return path, False
    tmp = path.with_suffix(".csv.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path, True


def read_summary(path: Path) -> Any:
    """Read ``summary.csv`` back (labels and factors as text where needed)."""
    import pandas as pd

    # round_trip: pandas' default fast parser can be one ulp off (it reads
    # 0.9550000000000001 as 0.955, which a table then shows as 0.95, not 0.96)
    df = pd.read_csv(path, dtype={"cell_id": str, "estimator": str, "metric": str, "label": str},
                     keep_default_na=False, na_values={c: [""] for c in ("mean", "sd", "mcse", "median")},
                     float_precision="round_trip")
    return df


def default_report(study: Any) -> dict[str, Any]:
    """The ``[report]`` of a study file that has none: error curves and a summary table."""
    x = next((g for g in study.grid if g in ("n_samples", "latent_cov", "noise_var")), None)
    figures = []
    if x is not None:
        for metric in study.metrics:
            if metric in ("block_gram", "overall_gram", "structure_gram", "wall_time"):
                figures.append({"name": f"{metric}_vs_{x}", "x": x, "metric": metric,
                                "logx": x == "n_samples", "logy": metric != "wall_time"})
    tables = [{"name": "summary_table", "metrics": list(study.metrics),
               "group": x} if x else {"name": "summary_table", "metrics": list(study.metrics)}]
    return {"figures": figures, "tables": tables}


def build_report(study: Any, summary_path: Path, out_dir: Path) -> list[Path]:
    """Write the figures, tables and MANIFEST.json; return the artefact paths."""
    from ..plotting import line_figure, save_figure
    from ..tables import render_table

    summary = read_summary(summary_path)
    spec = study.report or default_report(study)
    order = list(study.estimators)
    artefacts: list[Path] = []
    for fig_spec in spec.get("figures", []):
        notation, unit = metric_axis(fig_spec["metric"])
        fig = line_figure(summary, fig_spec, order, notation=notation, unit=unit)
        artefacts += save_figure(fig, inside(out_dir, fig_spec.get("name")))
    for tab_spec in spec.get("tables", []):
        latex, markdown = render_table(summary, tab_spec, order)
        for suffix, text in ((".tex", latex), (".md", markdown)):
            p = inside(out_dir, tab_spec.get("name"), suffix)
            p.write_text(text)
            artefacts.append(p)
    summary_sha = sha256_file(summary_path)
    manifest = {
        "study": study.name,
        "question": study.question,
        "config": study.path.name,
        "config_digest": study.digest,
        "summary": {"path": summary_path.name, "sha256": summary_sha},
        "artefacts": [
            {"path": p.name, "sha256": sha256_file(p), "summary_sha256": summary_sha}
            for p in sorted(artefacts)
        ],
    }
    mpath = out_dir / "MANIFEST.json"
    if mpath.exists():  # keep what ``hcl-stats rates`` recorded
        old = json.loads(mpath.read_text())
        if "rates" in old:
            manifest["rates"] = old["rates"]
    mpath.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return [*artefacts, mpath]
