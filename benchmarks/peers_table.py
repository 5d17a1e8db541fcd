"""Peer table on the replications that every estimator completed (same data).

The study report (``hcl-stats report simulations/peers.toml``) averages each
estimator over all of its stored replications; MOFA+ ran on fewer. This script
restricts every estimator to the (cell, replication) units that all of them have,
so every mean ± sd below is over exactly the same data sets.

Usage::

    hcl-stats export simulations/peers.toml --out /tmp/peers.csv
    python benchmarks/peers_table.py /tmp/peers.csv
"""

from __future__ import annotations

import sys

import pandas as pd

SETTINGS = {
    ("all:3", "[6.0, 6.0, 6.0]"): "paper-shaped",
    ("ABC:3 AB:3 A:3 C:3", "[6.0, 6.0, 6.0]"): "absent structures",
    ("all:3", "[2.0, 6.0, 10.0]"): "heteroscedastic",
}
COLUMNS = {
    "rel. overall Gram": ("overall_gram_rel", "overall"),
    "structure F1": ("support", "structure_f1"),
    "time (s)": ("wall_time", "fit"),
}


def main(path: str) -> None:
    d = pd.read_csv(path)
    d = d[d["status"] == "ok"]
    units = d.groupby(["cell_id", "rep"])["estimator"].nunique()
    full = units[units == d["estimator"].nunique()].index
    d = d.set_index(["cell_id", "rep"]).loc[full].reset_index()
    d["setting"] = [
        SETTINGS.get((s, str(v)), f"{s} {v}") for s, v in zip(d["structure"], d["noise_var"], strict=True)
    ]
    order = list(dict.fromkeys(d["estimator"]))
    for setting in SETTINGS.values():
        sub = d[d["setting"] == setting]
        if sub.empty:
            continue
        reps = sub.groupby("n_samples")["rep"].nunique().to_dict()
        print(f"\n### {setting} (common replications per n: {reps})\n")
        print("| n | estimator | " + " | ".join(COLUMNS) + " |")
        print("|---|---|" + "---:|" * len(COLUMNS))
        for n in sorted(sub["n_samples"].unique()):
            for est in order:
                cells = []
                for metric, label in COLUMNS.values():
                    v = sub[(sub.n_samples == n) & (sub.estimator == est)
                            & (sub.metric == metric) & (sub.label == label)]["value"]
                    cells.append("" if v.empty else f"{v.mean():.2f} ± {v.std(ddof=1):.2f}")
                print(f"| {n} | {est} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
