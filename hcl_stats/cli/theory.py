"""``hcl-stats rates``, ``limits`` and ``ceiling``: a study's errors against theory.

``hcl-stats limits FILE`` runs :func:`hcl_stats.theory.limits_report.write_limits_report`
(limits against Monte Carlo, reports/limits/). ``hcl-stats ceiling FILE`` runs
:func:`hcl_stats.theory.ceiling_report.write_ceiling_report` (the idealised
detection ceiling of a structure benchmark's cells). The rest of this docstring is
about ``rates``.

``hcl-stats rates FILE`` runs :func:`hcl_stats.theory.rates_report.write_rates_report`
on the study's replicate-level results: for every ``[[report.rates]]`` entry, the
log-log slope of a metric on a sample size against its theoretical exponent, and
for every ``[[report.terms]]`` entry, the fitted constants of an additive bound.
The files it writes and the entry format are in that module's docstring.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .._validation import cli_float, cli_int

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``rates``, ``limits`` and ``ceiling`` sub-commands."""
    p = sub.add_parser(
        "rates",
        help="log-log slopes with 95%% CIs of a study's errors vs theory",
        description="Fit the empirical rate of every [[report.rates]] entry of the "
        "study config on the replicate-level results (robust OLS of log error on "
        "log x) and write rates.md, rates.csv and figures to reports/<study>/.",
    )
    p.add_argument("config", type=Path, help="study TOML file")
    p.add_argument("--store", type=Path, default=None,
                   help="result store (default: <config dir>/_runs/<study>.sqlite)")
    p.add_argument("--out", type=Path, default=None,
                   help="report directory (default: reports/<study>)")
    p.set_defaults(func=run_rates)
    q = sub.add_parser(
        "limits",
        help="limits() against Monte Carlo and the efficiency table (reports/limits/)",
        description="Simulate the known-latent oracle and the structure-blind spectral "
        "estimators on the designs of a limits file and compare them with "
        "hcl_stats.theory.limits; write numbers.md (and efficiency.md from a study "
        "summary) to the output directory. Deterministic (SeedSequence seeds).",
    )
    q.add_argument("config", type=Path, help="limits TOML file (e.g. simulations/limits.toml)")
    q.add_argument("--out", type=Path, default=Path("reports") / "limits",
                   help="output directory (default: reports/limits)")
    q.set_defaults(func=run_limits)
    c = sub.add_parser(
        "ceiling",
        help="idealised detection ceiling of a structure benchmark's cells",
        description="For every non-null cell of a structure_benchmark study, the mean "
        "over its replicates' true models of the probability that an idealised "
        "spectral rule (each block alone in its d_S coordinates, sigma^2 known, "
        "family-wise level alpha under noise) counts every spike; a reference for "
        "the exact-recovery tables (docs/structure_learning.md section 5). Writes "
        "ceiling.csv and ceiling.md. Deterministic (seeded from the study seed).",
    )
    c.add_argument("config", type=Path,
                   help="structure_benchmark TOML (e.g. simulations/structure_benchmark.toml)")
    c.add_argument("--out", type=Path, default=None,
                   help="output directory (default: reports/<study>_ceiling)")
    c.add_argument("--alpha", type=cli_float(0.0, 1.0, open_low=True), default=0.05,
                   help="family-wise false-positive level of the idealised rule (default 0.05)")
    c.add_argument("--sims", type=cli_int(10), default=4000,
                   help="Monte Carlo draws per noise quantile (default 4000)")
    c.set_defaults(func=run_ceiling)


def run_rates(args: argparse.Namespace) -> int:
    """``hcl-stats rates``: :func:`hcl_stats.theory.rates_report.write_rates_report`."""
    from ..study.config import load_study
    from ..study.store import default_store_path
    from ..theory.rates_data import REPLICATES, load_replicates, update_manifest
    from ..theory.rates_report import rate_entries, write_rates_report

    study = load_study(args.config)
    rate_entries(study)  # refused before the store is looked for
    store_path = args.store or default_store_path(study)
    out_dir = args.out or Path("reports") / study.name
    out_dir.mkdir(parents=True, exist_ok=True)
    # always computed from the committed replicate-level CSV (exported first when
    # the store exists), so the outputs rebuild from committed files alone
    tidy = load_replicates(study, store_path, out_dir)
    outputs = write_rates_report(study, tidy, out_dir)
    mpath = update_manifest(out_dir, outputs)
    for path in [*outputs, out_dir / REPLICATES, mpath]:
        print(path)
    return 0


def run_limits(args: argparse.Namespace) -> int:
    """``hcl-stats limits``: :func:`hcl_stats.theory.limits_report.write_limits_report`."""
    from ..theory.limits_report import write_limits_report

    for path in write_limits_report(args.config, args.out):
        print(path)
    return 0


def run_ceiling(args: argparse.Namespace) -> int:
    """``hcl-stats ceiling``: :func:`hcl_stats.theory.ceiling_report.write_ceiling_report`."""
    from ..theory.ceiling_report import write_ceiling_report

    for path in write_ceiling_report(args.config, args.out, alpha=args.alpha, sims=args.sims):
        print(path)
    return 0
