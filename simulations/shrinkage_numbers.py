"""Issue 10's closing numbers of the shrinkage_paper study.

Usage::

    python simulations/shrinkage_numbers.py simulations/shrinkage_paper.toml \
        [--store PATH] [--out reports/shrinkage_paper]

Writes ``OUT/numbers.md``: for every cell (n, sigma^2) and estimator, mean ± sd
over replications of the overall Gram error and of the mean per-structure Gram
error (the mean over the 7 structures of ``||W^S W^S^T - hat||_F``, computed per
replication), then the issue's criteria against the zero estimator and the
unshrunk refinement.

The per-structure sd needs replicate-level values, which ``summary.csv`` does not
hold. As ``hcl-stats rates`` does, the script therefore goes through a committed
file: when the study store exists (default ``<config dir>/_runs/<study>.sqlite``,
after ``hcl-stats run``) it first exports the ``overall_gram`` and
``structure_gram`` rows to ``OUT/gram_replicates.csv`` (values to 8 significant
digits, sorted); it always computes from that CSV. A fresh clone, without the
store, rebuilds ``numbers.md`` byte for byte from the committed CSV.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ORDER = [
    "zero",
    "naive",
    "pca_shrink",
    "schur",
    "schur_shrink",
    "masked_gradient",
    "masked_shrink",
]
STRUCTURED_SHRINK = ["schur_shrink", "masked_shrink"]
SHRINK_PAIRS = [
    ("pca_shrink", "naive"),
    ("schur_shrink", "schur"),
    ("masked_shrink", "masked_gradient"),
]
REPLICATES = "gram_replicates.csv"
METRICS = ("overall_gram", "structure_gram")
COLUMNS = ["n_samples", "noise_var", "rep", "estimator", "status", "metric", "label", "value"]


def export(study, store_path: Path, path: Path) -> None:
    """Write the Gram-error rows of the store to ``path`` (sorted, 8 digits)."""
    from hcl_stats.study.store import ResultStore

    with ResultStore(store_path, readonly=True) as store:
        tidy = store.tidy()
    tidy = tidy[tidy["estimator"].isin(list(study.estimators))]
    tidy = tidy[tidy["metric"].isin(METRICS) | tidy["metric"].isna()]
    rows = []
    for r in tidy[COLUMNS].itertuples(index=False):
        value = float(r.value)
        rows.append((
            int(float(r.n_samples)), float(r.noise_var), int(r.rep), str(r.estimator),
            str(r.status), "" if r.metric != r.metric else str(r.metric),
            "" if r.label != r.label else str(r.label),
            "" if value != value else f"{value:.8g}",
        ))
    rows.sort()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows((n, f"{s2:g}", *rest) for n, s2, *rest in rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


def load(path: Path):
    """Per-replicate errors from the exported CSV."""
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    overall = defaultdict(dict)  # (n, s2, est) -> rep -> value
    struct = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["status"] != "ok":
            continue
        key = (int(float(r["n_samples"])), float(r["noise_var"]), r["estimator"])
        rep = int(r["rep"])
        if r["metric"] == "overall_gram":
            overall[key][rep] = float(r["value"])
        elif r["metric"] == "structure_gram":
            struct[key][rep].append(float(r["value"]))
    struct = {
        k: {rep: float(np.mean(v)) for rep, v in d.items()} for k, d in struct.items()
    }
    # keep only the replications that every estimator of the cell completed
    for cell in {k[:2] for k in overall}:
        keys = [k for k in overall if k[:2] == cell]
        common = set.intersection(*(set(overall[k]) for k in keys))
        for k in keys:
            overall[k] = {r: v for r, v in overall[k].items() if r in common}
            struct[k] = {r: v for r, v in struct[k].items() if r in common}
    return overall, struct


def stat(d):
    """Mean, sample sd and count over the replicates of one cell."""
    v = np.array([d[k] for k in sorted(d)])
    return v.mean(), v.std(ddof=1) if v.size > 1 else 0.0, v.size


def render(config: str, path: Path) -> None:
    """Print the numbers docs/shrinkage.md quotes, from the exported CSV ``path``."""
    overall, struct = load(path)
    cells = sorted({k[:2] for k in overall}, key=lambda c: (-c[1], c[0]))
    print("# Issue 10 numbers (paper configuration)\n")
    print(
        f"Source: `{config}` (mean ± sd over replications; errors are Frobenius norms "
        "of Gram differences; 'mean per-structure' averages the 7 structures' "
        "errors within each replication).\n"
    )
    for n, s2 in cells:
        print(f"## n = {n}, sigma^2 = {s2:g}\n")
        print("| estimator | overall | mean per-structure | reps |")
        print("|---|---|---|---|")
        for est in ORDER:
            key = (n, s2, est)
            if key not in overall:
                continue
            mo, so, k = stat(overall[key])
            ms, ss, _ = stat(struct[key])
            print(f"| {est} | {mo:.2f} ± {so:.2f} | {ms:.2f} ± {ss:.2f} | {k} |")
        print()
    print("## Criteria\n")
    for n, s2 in cells:
        z = (n, s2, "zero")
        if z not in overall:
            continue
        zo, zs = stat(overall[z])[0], stat(struct[z])[0]
        if s2 >= 1.0:
            best = min(
                (e for e in STRUCTURED_SHRINK if (n, s2, e) in overall),
                key=lambda e: stat(overall[(n, s2, e)])[0],
                default=None,
            )
            if best:
                bo, bs = stat(overall[(n, s2, best)])[0], stat(struct[(n, s2, best)])[0]
                print(
                    f"- n = {n}: best structured shrinkage estimator `{best}`: overall "
                    f"{bo:.2f} vs zero {zo:.2f} ({100 * (bo / zo - 1):+.1f}%), mean "
                    f"per-structure {bs:.2f} vs zero {zs:.2f} "
                    f"({100 * (bs / zs - 1):+.1f}%)."
                )
                mg = (n, s2, "masked_gradient")
                if mg in overall:
                    mo = stat(overall[mg])[0]
                    print(
                        f"  - vs unshrunk Schur + refinement (masked_gradient) "
                        f"{mo:.2f}: {100 * (1 - bo / mo):.1f}% lower overall."
                    )
            for e in ORDER:
                if (n, s2, e) in overall and e != "zero":
                    eo, es = stat(overall[(n, s2, e)])[0], stat(struct[(n, s2, e)])[0]
                    print(
                        f"  - `{e}` vs zero: overall {100 * (eo / zo - 1):+.1f}%, "
                        f"per-structure {100 * (es / zs - 1):+.1f}%"
                    )
        else:
            for shr, plain in SHRINK_PAIRS:
                if (n, s2, shr) in overall and (n, s2, plain) in overall:
                    a, b = (
                        stat(overall[(n, s2, shr)])[0],
                        stat(overall[(n, s2, plain)])[0],
                    )
                    c, d = (
                        stat(struct[(n, s2, shr)])[0],
                        stat(struct[(n, s2, plain)])[0],
                    )
                    print(
                        f"- sigma^2 = {s2:g}, n = {n}: `{shr}` vs `{plain}`: overall "
                        f"{100 * (a / b - 1):+.2f}%, per-structure "
                        f"{100 * (c / d - 1):+.2f}%."
                    )
        print()


def main(argv: list[str] | None = None) -> int:
    """Export (when the store exists), then write ``OUT/numbers.md``."""
    from hcl_stats.study.config import load_study
    from hcl_stats.study.store import default_store_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="simulations/shrinkage_paper.toml")
    parser.add_argument("--store", type=Path, default=None,
                        help="result store (default: <config dir>/_runs/<study>.sqlite)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: reports/<study>)")
    args = parser.parse_args(argv)
    study = load_study(args.config)
    store = args.store or default_store_path(study)
    out = args.out or Path("reports") / study.name
    out.mkdir(parents=True, exist_ok=True)
    path = out / REPLICATES
    if store.exists():
        export(study, store, path)
    elif not path.exists():
        raise FileNotFoundError(
            f"neither a result store ({store}) nor the exported {path} exists; run "
            f"'hcl-stats run {args.config}' first, or copy the committed "
            f"reports/{study.name}/{REPLICATES} into {out}"
        )
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        render(args.config, path)
    (out / "numbers.md").write_text(buf.getvalue(), encoding="utf-8")
    print(f"wrote {out / 'numbers.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
