"""``hcl-stats ceiling``: idealised detection references for a structure benchmark's cells.

For every non-null cell of a ``structure_benchmark`` study, the replicates' own
true models (drawn from their model streams, no data) go through
:func:`hcl_stats.theory.detection.detection_ceiling`, without and with the
conditioning requirement; each cell reports the means over replicates, with their
Monte Carlo standard errors. Writes ``ceiling.csv``
and ``ceiling.md`` (one table per design: M down, n across) to the output
directory. Deterministic: the noise quantiles are seeded from the study seed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_int, check_real
from ..exceptions import ValidationError
from .detection import detection_ceiling

__all__ = ["cell_ceilings", "write_ceiling_report"]


def cell_ceilings(study: Any, *, alpha: float = 0.05, sims: int = 4000,
                  progress: bool = False) -> list[dict[str, Any]]:
    """One row per non-null cell: design, M, n and the mean ceiling with its s.e.

    Parameters
    ----------
    study : Study
        A loaded study of kind ``structure_benchmark``.
    alpha : float, default=0.05
        Family-wise level of the idealised rule.
    sims : int, default=4000
        Draws per noise quantile.
    progress : bool, default=False
        Show a tqdm bar over cells.

    Returns
    -------
    list of dict
        Keys ``design``, ``M``, ``n``, ``isolated`` and ``conditioned`` (the two
        references of :func:`~hcl_stats.theory.detection.detection_ceiling`, means
        over replicates), ``isolated_se``, ``conditioned_se``, ``replicates``.

    Examples
    --------
    >>> from hcl_stats.study.config import load_study
    >>> from hcl_stats.theory.ceiling_report import cell_ceilings
    >>> study = load_study("simulations/structure_benchmark.toml")  # doctest: +SKIP
    >>> rows = cell_ceilings(study, sims=200)  # doctest: +SKIP
    """
    from ..study import STREAM_MODEL
    from ..study.tasks.structure_benchmark import true_model

    if study.kind != "structure_benchmark":
        raise ValidationError(
            f"config: the ceiling needs a study of kind 'structure_benchmark'; got "
            f"{study.kind!r} ({study.name})."
        )
    check_real(alpha, "alpha", low=0.0, high=1.0, low_open=True, high_open=True)
    check_int(sims, "sims", minimum=10)
    cells = [c for c in study.cells if c.factors["design"] != "noise"]
    if progress:
        from tqdm.auto import tqdm

        cells = tqdm(cells, desc="ceiling", unit="cell")
    cache: dict = {}
    rows = []
    for cell in cells:
        f = dict(cell.factors)
        values = []
        for rep in range(study.replications):
            rep_rng = study.rep_rng(cell, rep)
            gen = rep_rng(STREAM_MODEL, per_cell=f.get("model") == "per_cell")
            _, model = true_model(f, gen)
            values.append([detection_ceiling(model, f["n_samples"], alpha=alpha, sims=sims,
                                             rng=study.seed, cache=cache, conditioning=c)
                           for c in (False, True)])
        v = np.asarray(values)
        se = v.std(axis=0, ddof=1) / math.sqrt(len(v)) if len(v) > 1 else np.zeros(2)
        low, high = f["singular_values"]
        design = f"{f['design']}, singular values U({low:g}, {high:g})"
        rows.append({"design": design, "M": len(f["dims"]), "n": f["n_samples"],
                     "isolated": float(v[:, 0].mean()), "isolated_se": float(se[0]),
                     "conditioned": float(v[:, 1].mean()), "conditioned_se": float(se[1]),
                     "replicates": len(v)})
    return rows


def write_ceiling_report(config: str | Path, out_dir: str | Path | None = None, *,
                         alpha: float = 0.05,
                         sims: int = 4000, progress: bool = True) -> list[Path]:
    """Write ``ceiling.csv`` and ``ceiling.md`` for a structure benchmark study.

    Parameters
    ----------
    config : path
        The study's TOML file (e.g. ``simulations/structure_benchmark.toml``).
    out_dir : path, optional
        Output directory (created); nothing is written elsewhere. Default
        ``reports/<study>_ceiling``.
    alpha, sims, progress
        As in :func:`cell_ceilings`.

    Returns
    -------
    list of Path
        The files written.

    Examples
    --------
    >>> from hcl_stats.theory.ceiling_report import write_ceiling_report
    >>> write_ceiling_report("simulations/structure_benchmark.toml",
    ...                      "out")  # doctest: +SKIP
    """
    import pandas as pd

    from ..study.config import load_study

    study = load_study(config)
    rows = cell_ceilings(study, alpha=alpha, sims=sims, progress=progress)
    out = Path(out_dir) if out_dir is not None else Path("reports") / f"{study.name}_ceiling"
    out.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows).sort_values(["design", "M", "n"], kind="stable")
    csv = out / "ceiling.csv"
    df.to_csv(csv, index=False, float_format="%.4f", lineterminator="\n")
    lines = [
        f"# Idealised detection references (oracle): {study.name}",
        "",
        "Oracle references: computed from the true loadings, not from data. "
        "Probability that an idealised spectral rule counts every spike of the true "
        "family, sigma^2 known, a spike counted above the 1 - "
        f"{alpha:g}/(2^M - 1) quantile of the largest pure-noise eigenvalue ({sims} "
        "draws per dimension), Gaussian approximation of the spike eigenvalue (Paul "
        "2007). *isolated*: each block seen alone in its own d_S coordinates. "
        "*conditioned*: also every spike of the loadings on each union of views O "
        "counted in its d_O coordinates, which a selector that conditions on the views "
        "outside a candidate (schur_select) needs. Mean over the study's own "
        f"{study.replications} true models per cell (MC s.e. in brackets). References "
        "for the exact-recovery tables, not bounds on every procedure "
        "(docs/structure_learning.md §5).",
        "",
        # the default output directory, not ``out``: a rebuild into a scratch
        # directory must give the same bytes
        f"Rebuild: `hcl-stats ceiling {Path(config).as_posix()}` (writes "
        f"reports/{study.name}_ceiling/).",
    ]
    ns = sorted(df["n"].unique())
    for design, part in df.groupby("design", sort=True):
        lines += ["", f"## {design}: isolated / conditioned", "",
                  "| M | " + " | ".join(f"n = {n}" for n in ns) + " |",
                  "|---|" + "---:|" * len(ns)]
        for m, sub in part.groupby("M", sort=True):
            vals = {int(r.n): f"{r.isolated:.2f} ({r.isolated_se:.2f}) / "
                              f"{r.conditioned:.2f} ({r.conditioned_se:.2f})"
                    for r in sub.itertuples()}
            lines.append(f"| {m} | " + " | ".join(vals.get(int(n), "–") for n in ns) + " |")
    md = out / "ceiling.md"
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [csv, md]
