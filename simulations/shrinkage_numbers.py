"""Issue 10's closing numbers from the shrinkage_paper study store.

Usage (after ``hcl-stats run simulations/shrinkage_paper.toml``)::

    python simulations/shrinkage_numbers.py simulations/shrinkage_paper.toml \
        > reports/shrinkage_paper/numbers.md

Reads the store through ``hcl-stats export``; for every cell (n, sigma^2) and
estimator prints mean ± sd over replications of the overall Gram error and of the
mean per-structure Gram error (the mean over the 7 structures of
``||W^S W^S^T - hat||_F``, computed per replication), then checks the issue's
criteria against the zero estimator and the unshrunk refinement.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import tempfile
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


def load(config: str):
    """Run the study export into a temporary CSV and read per-replicate errors."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "export.csv"
        subprocess.run(
            ["hcl-stats", "export", config, "--out", str(out)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        with out.open() as fh:
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


def main(config: str) -> None:
    """Print the numbers docs/shrinkage.md quotes for one study config."""
    overall, struct = load(config)
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


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "simulations/shrinkage_paper.toml")
