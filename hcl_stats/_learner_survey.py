"""Every structure learner on one data set: structure, refusal, evidence, stability.

Private module behind the learner section of ``hcl-stats real-data-report``. Each
learner runs in a child process with a wall-clock limit, so one slow learner
cannot stall the report; the child is terminated (by its handle) at the limit.
"""

from __future__ import annotations

import multiprocessing
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .exceptions import HCLError

__all__ = ["LearnerRun", "learner_names", "run_learner", "survey_markdown"]

#: Learners re-run on bootstrap resamples for the frequencies (``slide`` is
#: excluded: its own bi-cross-validation per resample is too slow here).
RESAMPLED = ("schur_select", "convex_fast", "eigen", "correlation")


def learner_names() -> tuple[str, ...]:
    """The learners surveyed: the four package selectors, SLIDE, and the default.

    The default learner is included under its registry name when
    ``hcl_stats.estimators.DEFAULT_LEARNER`` exists.
    """
    from . import estimators

    names = ["schur_select", "convex_fast", "eigen", "correlation", "slide"]
    default = getattr(estimators, "DEFAULT_LEARNER", None)
    if isinstance(default, str) and default not in names:
        names.append(default)
    return tuple(names)


@dataclass
class LearnerRun:
    """Outcome of one learner on one data set."""

    learner: str
    status: str  # 'fitted', 'refused', 'timeout', 'error'
    seconds: float
    structure: str | None = None
    message: str = ""
    evidence: Any = None
    frequency: Any = None
    frequency_status: str = ""
    notes: list[str] = field(default_factory=list)


def _fit(learner: str, views: Any, seed: int | None = None) -> Any:
    """Fit ``learner`` with ``rng=seed``; ``select_structure``'s methods are refitted with the default.

    The seed matters for the learners that draw random numbers (``slide``'s
    bi-cross-validation folds); without it their survey row would change run to run.
    """
    from . import estimators

    if learner in ("eigen", "correlation"):
        from .workflow import select_structure

        structure = select_structure(views, method=learner).structure
        return estimators.get(estimators.DEFAULT)().fit(views, structure=structure, rng=seed)
    return estimators.get(learner)().fit(views, rng=seed)


def _child(conn: Any, learner: str, views: Any, n_null: int, n_boot: int, seed: int) -> None:
    # one BLAS thread: a learner's discrete choices (ranks at the edge, iteration
    # counts) must not depend on the machine's thread count
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - comes with scikit-learn
        _run_child(conn, learner, views, n_null, n_boot, seed)
        return
    with threadpool_limits(limits=1):
        _run_child(conn, learner, views, n_null, n_boot, seed)


def _run_child(conn: Any, learner: str, views: Any, n_null: int, n_boot: int, seed: int) -> None:
    from .block_evidence import block_evidence, selection_frequency

    t0 = time.perf_counter()
    out: dict[str, Any] = {}
    try:
        fit = _fit(learner, views, seed)
        out.update(status="fitted", structure=str(fit.structure))
    except HCLError as exc:
        out.update(status="refused", message=f"{type(exc).__name__}: {exc}")
        fit = None
    except Exception as exc:  # a crash is what the survey must expose
        out.update(status="error", message=f"{type(exc).__name__}: {exc}\n"
                   + traceback.format_exc(limit=3))
        fit = None
    out["seconds"] = time.perf_counter() - t0
    conn.send(out)
    if fit is not None:  # n_null = 0: signal and edge only (no test)
        try:
            conn.send({"evidence": block_evidence(views, fit, n_null=n_null, rng=seed)})
        except HCLError as exc:
            conn.send({"evidence_error": f"{type(exc).__name__}: {exc}"})
    if n_boot and learner in RESAMPLED:
        ref = None if fit is None else fit.structure
        # partial results after every resample: a time limit keeps what was done
        selection_frequency(views, learner=learner, n_boot=n_boot, rng=seed + 1, reference=ref,
                            on_resample=lambda fr: conn.send({"frequency": fr}))
    conn.send({"done": True})


def run_learner(
    learner: str,
    views: Any,
    *,
    n_null: int,
    n_boot: int,
    seed: int,
    timeout: float,
) -> LearnerRun:
    """Fit, test and resample one learner in a child process, within ``timeout`` seconds.

    Everything the child finished before the limit is kept (fit, then evidence,
    then frequencies); what it did not finish is reported as such.
    """
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, learner, views, n_null, n_boot, seed))
    t0 = time.perf_counter()
    proc.start()
    child.close()
    run = LearnerRun(learner=learner, status="timeout", seconds=float("nan"))
    stage = "fit"
    try:
        while True:
            left = timeout - (time.perf_counter() - t0)
            if left <= 0 or not parent.poll(left):
                run.notes.append(f"stopped at the {timeout:.0f} s limit during the {stage}")
                if stage == "fit":
                    run.seconds = time.perf_counter() - t0
                break
            try:
                msg = parent.recv()
            except EOFError:
                run.notes.append(f"child process ended during the {stage}")
                break
            if "status" in msg:
                run.status, run.seconds = msg["status"], msg["seconds"]
                run.structure, run.message = msg.get("structure"), msg.get("message", "")
                stage = ("block-evidence test" if n_null else "block evidence (signal and edge)"
                         ) if run.status == "fitted" else "resampling"
            elif "evidence" in msg:
                run.evidence, stage = msg["evidence"], "resampling"
            elif "evidence_error" in msg:
                run.notes.append(f"evidence refused: {msg['evidence_error']}")
                stage = "resampling"
            elif "frequency" in msg:
                run.frequency = msg["frequency"]
            elif "done" in msg:
                break
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join(10)
        parent.close()
    return run


def _short(text: str, limit: int = 220) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= limit else first[: limit - 3] + "..."


def survey_markdown(
    title: str, runs: list[LearnerRun], names: tuple[str, ...] | None, n_boot: int = 0
) -> list[str]:
    """Markdown lines: one summary table, then per-learner evidence and frequencies."""
    from .structure import format_block

    lines = [f"### {title}", "",
             "| learner | outcome | structure | seconds | resampled: exact structure |",
             "|---|---|---|---:|---|"]
    for r in runs:
        outcome = {"fitted": "fitted", "refused": f"typed refusal: {_short(r.message)}",
                   "timeout": "not finished", "error": f"**crash**: {_short(r.message)}"}[r.status]
        fr = r.frequency
        rs = (f"{fr.exact}/{fr.n_boot} (refusals {fr.failures})"
              + (f" of {n_boot} planned" if n_boot and fr.n_boot < n_boot else "")
              if fr is not None
              else "-" if r.learner not in RESAMPLED else "not finished")
        secs = "-" if not np.isfinite(r.seconds) else f"{r.seconds:.1f}"
        struct = f"`{r.structure}`" if r.structure else "-"
        lines.append(f"| {r.learner} | {outcome} | {struct} | {secs} | {rs} |")
    for r in runs:
        if r.notes:
            lines += ["", f"{r.learner}: " + "; ".join(r.notes) + "."]
    lines.append("")
    for r in runs:
        fr = r.frequency
        if r.evidence is None and fr is None:
            continue
        lines += [f"#### {r.learner}", ""]
        if r.evidence is not None:
            ev = r.evidence
            cols = ["block", "views", "rank (fit)", "signal l_1", "edge", "signal/edge",
                    "p-value", "decision"]
            if fr is not None:
                cols += ["freq", "freq (rank)"]
            lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * 2 + "---:|" * (len(cols) - 2)]
            for row in ev.rows:
                views = ",".join(names[m] for m in sorted(row.block)) if names else row.name
                cells = [row.name, views, str(row.fitted_rank), f"{row.signal:.4g}",
                         f"{row.edge:.3g}", f"{row.ratio:.3g}",
                         "-" if row.p_value is None else f"{row.p_value:.2f}", row.decision]
                if fr is not None:
                    cells += [f"{fr.frequency(row.block):.2f}",
                              f"{fr.frequency(row.block, row.fitted_rank):.2f}"
                              if row.fitted_rank else "-"]
                lines.append("| " + " | ".join(cells) + " |")
            test = (f"test: parametric bootstrap, {ev.n_null} draws per null, alpha = "
                    f"{ev.alpha:g}" if ev.n_null else "no test of r_S = 0 (null draws 0)")
            lines += ["", f"sigma^2 (MP bulk) = {ev.noise_var:.4g}; {test}.", ""]
        if fr is not None:
            lines += [f"Selection on {fr.n_boot} {fr.resample} resamples "
                      f"(learner told n/2 samples): exact full-data structure in {fr.exact}, "
                      f"refusals {fr.failures}.", ""]
            if fr.blocks:
                lines += ["| block | selected in | ranks (count) |", "|---|---:|---|"]
                for b, counts in zip(fr.blocks, fr.rank_counts, strict=True):
                    ranks = ", ".join(f"{k}:{v}" for k, v in sorted(counts.items()))
                    lines.append(f"| {format_block(b)} | {fr.frequency(b):.2f} | {ranks} |")
                lines.append("")
            if fr.failure_messages:
                lines += [f"First refusal: {_short(fr.failure_messages[0])}", ""]
    return lines
