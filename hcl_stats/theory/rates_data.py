"""Committed replicate-level data of ``hcl-stats rates`` and predicted-vs-measured (private).

``hcl-stats rates`` fits slopes on replicate-level results, which live in the
git-ignored study store. To make every number of ``reports/<study>/rates.*``
rebuild from committed files, the command

1. exports the rows it needs from the store (when the store exists) to
   ``reports/<study>/replicates.csv`` (values to 8 significant digits, sorted), and
2. always computes from that CSV, so a run with the store and a run from the
   committed CSV alone give byte-identical outputs.

When the study records ``predicted_gram`` (:mod:`hcl_stats.study.tasks.limits_metrics`), the
command also writes the predicted-against-measured comparison: a table with the
measured mean and its 95% CI, the mean prediction, the ratio predicted/measured
with a CI, and a figure ``rate_predicted_vs_measured``.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

__all__ = [
    "REPLICATES",
    "load_replicates",
    "predicted_figure",
    "predicted_markdown",
    "predicted_table",
    "update_manifest",
]

REPLICATES = "replicates.csv"

#: predicted metric label -> measured (metric, label)
_MEASURED = {"overall": ("overall_gram", "overall")}
_PRED_ESTIMATORS = ("naive", "pca_shrink", "masked_gradient")


def _needed(study: Any) -> dict[str, set[str] | None]:
    """Metric -> labels (None: all labels) that ``hcl-stats rates`` reads."""
    need: dict[str, set[str] | None] = {}

    def add(metric: str, labels: Any) -> None:
        if labels is None or need.get(metric, set()) is None:
            need[metric] = None
        else:
            need.setdefault(metric, set()).update(str(x) for x in labels)  # type: ignore[union-attr]

    for spec in list(study.report.get("rates", [])) + list(study.report.get("terms", [])):
        labels = spec.get("labels") or ([spec["label"]] if "label" in spec else None)
        if "metric" in spec:
            add(str(spec["metric"]), labels)
        if spec.get("bound"):
            bmetric, _, blabel = str(spec["bound"]).partition(":")
            add(bmetric, [blabel] if blabel else None)
        if spec.get("terms"):
            add(str(spec.get("terms_metric", "ds_terms")), [str(t) for t in spec["terms"]])
        if spec.get("y"):
            add(str(spec["y"]), None)
    if "predicted_gram" in study.metrics:
        # read only beside the predictions (masked_gradient rows suffice): recorded
        # under a private key so that load_replicates can drop the other estimators
        need["_pred_only"] = {m for m in ("structure_gram", "oracle_floor") if m not in need}
        add("predicted_gram", None)
        add("oracle_floor", None)
        add("overall_gram", ["overall"])
        add("structure_gram", None)
    return need


def load_replicates(study: Any, store_path: Path | None, out_dir: Path) -> Any:
    """Replicate-level rows for ``hcl-stats rates``, via the committed CSV.

    With a store: export the needed rows to ``out_dir/replicates.csv`` first.
    Without: read the committed CSV. Raises FileNotFoundError if neither exists.
    """
    import pandas as pd

    path = out_dir / REPLICATES
    if store_path is not None and store_path.exists():
        from ..study.store import ResultStore

        with ResultStore(store_path, readonly=True) as store:
            tidy = store.tidy()
        tidy = tidy[tidy["estimator"].isin(list(study.estimators))]
        need = _needed(study)
        if need:
            pred_only = sorted(need.pop("_pred_only", None) or ())
            keep = tidy["metric"].isna()
            for metric, labels in need.items():
                hit = tidy["metric"] == metric
                if labels is not None:
                    hit &= tidy["label"].astype(str).isin(sorted(labels))
                keep |= hit
            # the per-structure measurements and the truth-only limits are read only
            # beside the predictions (and the limits are the same for every estimator)
            keep &= ~tidy["metric"].isin(pred_only) | (tidy["estimator"] == "masked_gradient")
            tidy = tidy[keep]
        factors = [c for c in study.grid if c in tidy.columns]
        cols = ["cell_id", "rep", "estimator", "status", *factors, "metric", "label", "value"]
        out = tidy[cols].copy()
        out = out.sort_values(["cell_id", "rep", "estimator", "metric", "label"], kind="stable")
        out["value"] = [
            "" if v != v else f"{float(v):.8g}" for v in out["value"].astype(float)
        ]
        out.to_csv(path, index=False, lineterminator="\n")
    elif not path.exists():
        raise FileNotFoundError(
            f"neither a result store ({store_path}) nor the committed {path} exists; "
            f"run 'hcl-stats run {study.path}' first"
        )
    data = pd.read_csv(path, keep_default_na=True, float_precision="round_trip")
    for col in ("label", "metric", "status", "estimator", "cell_id"):
        if col in data.columns:
            data[col] = data[col].astype(object)
    return data


# --------------------------------------------------------------- predicted
def _ci(values: Any) -> tuple[float, float, float, int]:
    """Mean and 95% t interval of a sample."""
    from scipy import stats

    v = [float(x) for x in values if x == x]
    n = len(v)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    mean = sum(v) / n
    if n == 1:
        return mean, float("nan"), float("nan"), 1
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1))
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return mean, mean - half, mean + half, n


def predicted_table(tidy: Any, estimator_order: list[str]) -> Any:
    """Predicted against measured per (cell, estimator, label); empty if not recorded.

    The measured value of label ``overall`` is ``overall_gram``; of a structure
    label, ``structure_gram``. The ratio's CI propagates the measured mean's CI
    (the prediction is averaged over the same replicate models).
    """
    import pandas as pd

    ok = tidy[tidy["status"] == "ok"]
    pred = ok[(ok["metric"] == "predicted_gram") & ~ok["label"].astype(str).str.startswith("valid")]
    if pred.empty:
        return pd.DataFrame()
    valid = ok[(ok["metric"] == "predicted_gram") & (ok["label"] == "valid:overall")]
    factors = [c for c in ("dims", "n_samples") if c in ok.columns]
    rows = []
    for (cell, est, label), sub in pred.groupby(["cell_id", "estimator", "label"], sort=False):
        metric, mlabel = _MEASURED.get(str(label), ("structure_gram", str(label)))
        meas = ok[(ok["cell_id"] == cell) & (ok["estimator"] == est)
                  & (ok["metric"] == metric) & (ok["label"] == mlabel)]
        mean, lo, hi, n = _ci(meas["value"])
        p_mean = float(sub["value"].astype(float).mean())
        v = valid[(valid["cell_id"] == cell) & (valid["estimator"] == est)]
        rows.append({
            **{f: sub[f].iloc[0] for f in factors},
            "estimator": est, "label": str(label), "n_reps": n,
            "measured": mean, "measured_ci_low": lo, "measured_ci_high": hi,
            "predicted": p_mean, "ratio": p_mean / mean,
            "ratio_ci_low": p_mean / hi if hi > 0 else float("nan"),
            "ratio_ci_high": p_mean / lo if lo > 0 else float("nan"),
            "valid_fraction": float(v["value"].astype(float).mean()) if len(v) else float("nan"),
        })
    df = pd.DataFrame(rows)
    order = {e: i for i, e in enumerate(estimator_order)}
    df["_d"] = [sum(json.loads(x)) if isinstance(x, str) else sum(x) for x in df["dims"]] \
        if "dims" in df.columns else 0
    df["_o"] = df["estimator"].map(order)
    df["_l"] = (df["label"] != "overall").astype(int)
    sort = ["_o", "_l", "label", "_d"] + (["n_samples"] if "n_samples" in df.columns else [])
    df = df.sort_values(sort, kind="stable").drop(columns=["_o", "_l", "_d"])
    return df.reset_index(drop=True)


def predicted_markdown(df: Any) -> str:
    """Markdown section: summary of ratios, then the full table."""
    if df.empty:
        return ""
    lines = [
        "### Predicted against measured (`hcl_stats.theory.predicted_error`)", "",
        "Prediction = mean over the replicates' true models of the asymptotic "
        "`E ||G_hat - G||_F` (docs/theory.md §9; spectral estimators: overall "
        "error only; masked_gradient: overall and per structure, models with at most "
        "1000 free loading entries, i.e. d <= 120 here). Measured = mean over "
        "replicates with its 95% t interval. `valid` = fraction of replicate "
        "models on which the asymptotics apply (spectral: every spike detectable "
        "and 3 sd from the edge; masked: second-order term below 10% of the "
        "first). These predictions use the truth: they are theory, not estimators.", "",
        "| estimator | rows | cells | median predicted/measured | worst (furthest from 1) "
        "| median over valid cells | worst over valid cells |",
        "|---|---|---|---|---|---|---|",
    ]
    for (est, is_overall), sub in df.groupby(
        ["estimator", df["label"] == "overall"], sort=False
    ):
        r = sub["ratio"]
        worst = r.iloc[(r - 1).abs().argmax()]
        val = sub[sub["valid_fraction"] >= 0.999] if is_overall else sub
        if val.empty:
            vmed = vworst = "-"
        else:
            vr = val["ratio"]
            vmed = f"{vr.median():.3f}"
            vworst = f"{vr.iloc[(vr - 1).abs().argmax()]:.3f}"
        lines.append(f"| {est} | {'overall' if is_overall else 'structures'} | {len(sub)} | "
                     f"{r.median():.3f} | {worst:.3f} | {vmed} | {vworst} |")
    lines += ["", "| estimator | label | dims | n | measured [95% CI] | predicted | "
              "predicted/measured [95% CI] | valid |", "|---|---|---|---|---|---|---|---|"]
    for _, r in df.iterrows():
        lines.append(
            f"| {r['estimator']} | {r['label']} | {r.get('dims', '')} | {r.get('n_samples', '')} | "
            f"{r['measured']:.4g} [{r['measured_ci_low']:.4g}, {r['measured_ci_high']:.4g}] | "
            f"{r['predicted']:.4g} | {r['ratio']:.3f} [{r['ratio_ci_low']:.3f}, "
            f"{r['ratio_ci_high']:.3f}] | {r['valid_fraction']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def predicted_figure(df: Any, estimator_order: list[str]) -> Any:
    """Overall error vs n: measured means with 95% CIs (markers) and predictions (lines)."""
    from matplotlib.figure import Figure

    from ..plotting import estimator_style

    sub = df[df["label"] == "overall"]
    panels = list(sub.groupby("dims", sort=False)) if "dims" in sub.columns else [("", sub)]
    panels.sort(key=lambda kv: sum(json.loads(kv[0])) if isinstance(kv[0], str) and kv[0] else 0)
    from matplotlib.ticker import FormatStrFormatter

    fig = Figure(figsize=(4.2 * len(panels), 3.9), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    handles: dict[str, Any] = {}
    for ax, (dims, part) in zip(axes, panels, strict=True):
        for est, e in part.groupby("estimator", sort=False):
            st = estimator_style(est, estimator_order)
            e = e.sort_values("n_samples")
            x = e["n_samples"].to_numpy(dtype=float)
            y = e["measured"].to_numpy(dtype=float)
            err = [y - e["measured_ci_low"].to_numpy(float), e["measured_ci_high"].to_numpy(float) - y]
            h1 = ax.errorbar(x, y, yerr=err, fmt=st.marker, color=st.colour, ms=4,
                             capsize=2, lw=0, elinewidth=1)
            (h2,) = ax.plot(x, e["predicted"].to_numpy(float), "-", color=st.colour, lw=1.2)
            handles.setdefault(f"{st.name}: measured mean (95% CI)", h1)
            handles.setdefault(f"{st.name}: predicted (theory)", h2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.yaxis,):
            axis.set_major_formatter(FormatStrFormatter("%g"))
            axis.set_minor_formatter(FormatStrFormatter("%g"))
        ax.tick_params(axis="y", which="minor", labelsize=6)
        ax.set_xlabel("unlabelled sample size n")
        ax.set_ylabel(r"overall error $\|\hat W\hat W^\top - WW^\top\|_F$")
        d = json.loads(dims) if isinstance(dims, str) and dims else dims
        ax.set_title(f"d = {tuple(d)} (D = {sum(d)})" if d else "overall error", fontsize=9)
        ax.grid(True, which="both", lw=0.3, alpha=0.5)
    fig.legend(list(handles.values()), list(handles.keys()), loc="outside lower center",
               ncol=3, fontsize=8, frameon=False)
    return fig


def update_manifest(out_dir: Path, paths: list[Path]) -> Path:
    """Record the rates artefacts (and the replicates' sha256) in ``MANIFEST.json``.

    Kept under the key ``rates``, which ``hcl-stats report`` preserves.
    """
    mpath = out_dir / "MANIFEST.json"
    manifest = json.loads(mpath.read_text()) if mpath.exists() else {}

    def sha(p: Path) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest()

    rep = out_dir / REPLICATES
    rep_sha = sha(rep)
    manifest["rates"] = {
        "command": "hcl-stats rates",
        "replicates": {"path": REPLICATES, "sha256": rep_sha},
        "artefacts": [
            {"path": p.name, "sha256": sha(p), "replicates_sha256": rep_sha}
            for p in sorted(set(paths)) if p.name != REPLICATES
        ],
    }
    mpath.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return mpath
