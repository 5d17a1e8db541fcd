"""Commands ``hcl-stats validate | run | status | summarize | report | replay | export``.

Monte Carlo studies from TOML configs (:mod:`hcl_stats.study`), stored in SQLite
(:mod:`hcl_stats.study.store`, default ``<config dir>/_runs/<study>.sqlite``), run by
:mod:`hcl_stats.study.runner`, and turned into ``reports/<study>/`` (default relative to
the current directory): ``summary.csv``, figures (PDF + PNG), tables (``.tex`` +
``.md``) and ``MANIFEST.json`` with the sha256 of the summary and of every
artefact. ``report`` re-summarizes first when the store exists (rewriting
``summary.csv`` only if its content changed), and otherwise uses the committed
``summary.csv``, so reports are a pure function of the summary.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._validation import non_negative_int, positive_float, positive_int

__all__: list[str] = []


def _common(p: argparse.ArgumentParser, *, store: bool = True, out: bool = False) -> None:
    p.add_argument("config", type=Path, help="study file, e.g. simulations/quick.toml")
    if store:
        p.add_argument(
            "--store", type=Path, default=None,
            help="result store (default: <config dir>/_runs/<study>.sqlite)",
        )
    if out:
        p.add_argument(
            "--out", type=Path, default=None,
            help="report directory (default: reports/<study> in the current directory)",
        )


def register(sub: argparse._SubParsersAction) -> None:
    """Add the study sub-commands."""
    p = sub.add_parser(
        "validate", help="check a study file; print its cells and estimated cost",
        description="Load and validate a study file; print the number of cells and "
        "units and a rough serial cost (--probe times one unit of the largest cell).",
    )
    _common(p)
    p.add_argument("--reps", type=positive_int, default=None,
                   help="replications, >= 1 (default: from the file)")
    p.add_argument("--probe", action="store_true", help="time one unit of the largest cell")
    p.set_defaults(func=run_validate)

    p = sub.add_parser(
        "run", help="run (or resume) a Monte Carlo study",
        description="Compute every missing (cell, replicate, estimator) unit and store "
        "it. Re-running resumes; results are identical for any --jobs or backend. Two "
        "runs on one store never lose or duplicate rows but each computes every unit "
        "missing when it starts; split the work with --where or --estimator.",
        epilog="Example: hcl-stats run simulations/quick.toml --jobs 2",
    )
    _common(p)
    p.add_argument("--jobs", "-j", type=positive_int, default=None,
                   help="worker processes, >= 1 (default: all cores; 1 = serial in-process)")
    p.add_argument("--reps", type=positive_int, default=None,
                   help="run replicates 0..R-1 only (R >= 1)")
    p.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                   help="only cells with this factor value (repeatable), e.g. n_samples=5000")
    p.add_argument("--estimator", action="append", default=None, metavar="LABEL",
                   help="only this estimator label (repeatable)")
    p.add_argument("--retry-failed", action="store_true", help="recompute failed units")
    p.add_argument("--scheduler", default=None,
                   help="Dask scheduler address tcp://host:port. A Dask client unpickles "
                   "what the scheduler sends (arbitrary code): only connect to schedulers "
                   "you trust. Refused if it does not answer within 10 s")
    p.add_argument("--dask-local", type=positive_int, default=None, metavar="N",
                   help="start a Dask LocalCluster with N >= 1 worker processes")
    p.add_argument("--blas-threads", type=non_negative_int, default=1,
                   help="BLAS threads per worker (default: 1; 0 = leave the BLAS default)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--strict", action="store_true", help="exit 1 if any unit failed")
    p.add_argument("--timeout", type=positive_float, default=None, metavar="SECONDS",
                   help="per-replicate timeout of each fit (and of the data generation); "
                   "a fit running longer is recorded as failed and the study goes on")
    p.set_defaults(func=run_run)

    p = sub.add_parser("status", help="progress and failures of a study")
    _common(p)
    p.add_argument("--failures", type=non_negative_int, default=10,
                   help="failed units to list, >= 0 (default 10)")
    p.set_defaults(func=run_status)

    p = sub.add_parser("summarize", help="write reports/<study>/summary.csv")
    _common(p, out=True)
    p.set_defaults(func=run_summarize)

    p = sub.add_parser(
        "report", help="figures, tables and MANIFEST.json from the summary",
        description="Summarize (if the store exists), then write the figures (PDF+PNG) "
        "and tables (LaTeX+Markdown) of the study's [report] section and "
        "MANIFEST.json. Reruns are byte-identical.",
    )
    _common(p, out=True)
    p.set_defaults(func=run_report)

    p = sub.add_parser(
        "replay", help="re-run one (cell, replicate) in process and compare with the store",
    )
    _common(p)
    p.add_argument("--cell", required=True, help="cell id (or a unique prefix)")
    p.add_argument("--rep", type=non_negative_int, required=True,
                   help="replicate index, 0..replications-1")
    p.add_argument("--estimator", action="append", default=None, metavar="LABEL")
    p.set_defaults(func=run_replay)

    p = sub.add_parser("export", help="export the store as tidy CSV or Parquet")
    _common(p)
    p.add_argument("--out", type=Path, required=True, help="output .csv or .parquet file")
    p.set_defaults(func=run_export)


# ------------------------------------------------------------------ helpers
def _load(args: argparse.Namespace) -> Any:
    from ..study.config import load_study

    return load_study(args.config)


def _store_path(args: argparse.Namespace, study: Any) -> Path:
    from ..study.store import default_store_path

    return args.store if getattr(args, "store", None) else default_store_path(study)


def _out_dir(args: argparse.Namespace, study: Any) -> Path:
    return args.out if getattr(args, "out", None) else Path("reports") / study.name


def _check_reps(reps: int | None, option: str) -> None:
    """``--reps`` must be None or in 1..MAX_REPLICATIONS."""
    from ..exceptions import ValidationError
    from ..study.config import MAX_REPLICATIONS

    if reps is not None and not 1 <= reps <= MAX_REPLICATIONS:
        raise ValidationError(f"{option} must be an integer in 1..{MAX_REPLICATIONS}; got {reps}.")


# ------------------------------------------------------------------ commands
def run_validate(args: argparse.Namespace) -> int:
    """``hcl-stats validate``."""
    from ..study.overview import validate_lines

    study = _load(args)
    _check_reps(args.reps, "--reps")
    reps = args.reps or study.replications
    for line in validate_lines(study, reps, _store_path(args, study), probe=args.probe):
        print(line)
    return 0


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like a Ctrl-C so that the same clean-up runs."""


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[dict]:
    """Turn SIGTERM (and note SIGINT) into KeyboardInterrupt while a run computes.

    The yielded dict receives ``"signal"``: the number of the signal that stopped
    the run. Units are written in single transactions, so the interrupted
    transaction is rolled back and a rerun resumes from the units stored.
    """
    import signal
    import threading

    received: dict = {}
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def on_term(signum, frame):
        received.setdefault("signal", signum)
        raise _Terminated()

    def on_int(signum, frame):
        received.setdefault("signal", signum)
        raise KeyboardInterrupt()

    old_term = signal.signal(signal.SIGTERM, on_term)
    old_int = signal.signal(signal.SIGINT, on_int)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)


def run_run(args: argparse.Namespace) -> int:
    """``hcl-stats run``."""
    from ..study.overview import unit_memory_line
    from ..study.runner import Backend, parse_where, run_study
    from ..study.store import ResultStore

    study = _load(args)
    keep = parse_where(study, args.where)  # refuse cells to run that cannot fit in memory
    unit_memory_line(study, [c for c in study.cells if all(p(c) for p in keep)])
    if args.scheduler and args.dask_local:
        from ..exceptions import ValidationError

        raise ValidationError("give either --scheduler or --dask-local, not both.")
    if args.dask_local is not None and args.dask_local < 1:
        from ..exceptions import ValidationError

        raise ValidationError(f"--dask-local must be an integer >= 1; got {args.dask_local}.")
    backend = Backend(
        "dask" if (args.scheduler or args.dask_local) else "process",
        jobs=args.jobs, scheduler=args.scheduler, dask_local=args.dask_local,
        blas_threads=args.blas_threads if args.blas_threads > 0 else None,
    )
    path = _store_path(args, study)
    with ResultStore(path) as store, _terminate_as_interrupt() as received:
        try:
            rep = run_study(
                study, store, backend=backend, reps=args.reps, where=args.where,
                estimators=args.estimator, retry_failed=args.retry_failed,
                quiet=args.quiet, argv=sys.argv, timeout=args.timeout,
            )
        except KeyboardInterrupt:
            import signal

            sig = received.get("signal", signal.SIGINT)
            try:
                stored = f"{store.count('units')} units stored"
            except Exception:  # noqa: BLE001 - the message must be printed regardless
                stored = "units written so far are stored"
            print(f"hcl-stats run: interrupted by {signal.Signals(sig).name}; {stored} in "
                  f"{path}; rerun the same command to resume", file=sys.stderr)
            return 128 + int(sig)
    print(
        f"{study.name}: {rep.written_units} units computed ({rep.failed_units} failed fits), "
        f"{rep.skipped_units} fits already stored; backend {rep.backend}, "
        f"{rep.jobs} worker(s), {rep.wall_time:.1f} s; store {path}"
    )
    return 1 if (args.strict and rep.failed_units) else 0


def run_status(args: argparse.Namespace) -> int:
    """``hcl-stats status``."""
    from ..study.overview import status_lines

    study = _load(args)
    for line in status_lines(study, _store_path(args, study), failures=args.failures):
        print(line)
    return 0


def run_summarize(args: argparse.Namespace) -> int:
    """``hcl-stats summarize``."""
    from ..study.report import write_summary

    study = _load(args)
    path, changed = write_summary(study, _store_path(args, study), _out_dir(args, study))
    print(f"{path}: {'written' if changed else 'unchanged'}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    """``hcl-stats report``."""
    from ..study.report import build_report, write_summary

    study = _load(args)
    out_dir = _out_dir(args, study)
    store_path = _store_path(args, study)
    summary_path = out_dir / "summary.csv"
    if store_path.exists():
        summary_path, changed = write_summary(study, store_path, out_dir)
        if changed:
            print(f"{summary_path}: re-summarized from {store_path}")
    elif not summary_path.exists():
        raise FileNotFoundError(
            f"neither a store ({store_path}) nor {summary_path} exists; run "
            f"'hcl-stats run {args.config}' first"
        )
    paths = build_report(study, summary_path, out_dir)
    for p in paths:
        print(p)
    return 0


def run_replay(args: argparse.Namespace) -> int:
    """``hcl-stats replay``."""
    from ..study.overview import replay_unit

    study = _load(args)
    if args.rep >= study.replications:
        from ..exceptions import ValidationError

        raise ValidationError(
            f"--rep must be a replicate index in 0..{study.replications - 1} "
            f"(replications = {study.replications}); got {args.rep}."
        )
    cell = study.cell(args.cell)
    labels = tuple(args.estimator or study.estimators)
    outcome = replay_unit(study, cell, args.rep, labels, _store_path(args, study))
    for line in outcome.lines:
        print(line)
    if outcome.mismatches:
        print(f"{outcome.mismatches} value(s) differ from the store", file=sys.stderr)
        return 1
    return 0


def run_export(args: argparse.Namespace) -> int:
    """``hcl-stats export``."""
    from ..study.store import ResultStore

    study = _load(args)
    with ResultStore(_store_path(args, study), readonly=True) as store:
        store.check_study(study)
        df = store.tidy()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        try:
            df.to_parquet(out, index=False)
        except ImportError as exc:
            raise ImportError("Parquet export needs pyarrow; pip install pyarrow") from exc
    elif out.suffix == ".csv":
        df.to_csv(out, index=False, lineterminator="\n")
    else:
        from ..exceptions import ValidationError

        raise ValidationError(f"--out must end in .csv or .parquet; got {str(out)!r}.")
    print(f"{out}: {len(df)} rows")
    return 0
