"""Shared helpers of the study-harness tests: a tiny study file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

TINY = """
[study]
question = "Tiny test study."
replications = {reps}
seed = {seed}
sampler = "{sampler}"
metrics = ["block_gram", "overall_gram", "structure_gram", "wall_time", "converged"]

[scenario]
dims = [4, 5, 6]
structure = "all:1"
noise_var = 0.5

[grid]
n_samples = {ns}

[estimators.naive]
[estimators.schur]
[estimators.schur_per_view]
name = "schur"
variant = "per_view"
[estimators.masked_gradient]
max_iter = 200
{extra}
"""


def write_tiny(
    path: Path,
    *,
    reps: int = 3,
    seed: int = 7,
    ns: str = "[50, 200]",
    sampler: str = "data",
    extra: str = "",
    name: str = "tiny.toml",
) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    cfg = path / name
    cfg.write_text(TINY.format(reps=reps, seed=seed, ns=ns, sampler=sampler, extra=extra))
    return cfg


def values(store) -> dict:
    """(cell, rep, estimator, metric, label) -> value, without timings."""
    return {
        (c, r, e, m, lab): v
        for c, r, e, m, lab, v in store.query(
            "SELECT cell_id, rep, estimator, metric, label, value FROM results "
            "WHERE metric != 'wall_time'"
        )
    }


def count_units(db: Path) -> int:
    """Completed units in a store read-only; 0 before the schema exists."""
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT COUNT(*) FROM units").fetchone()[0]
        finally:
            con.close()
    except sqlite3.DatabaseError:  # schema not created yet, or a half-written file
        return 0
