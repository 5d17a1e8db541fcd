"""Timing helpers shared by the benchmark scripts (not part of the package).

Ratios are measured side by side: in each repetition the baseline and the
candidate run back to back, so slow drifts of the machine's load affect both;
the table reports the median and the min/max of the per-repetition ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

import hcl_stats as hs

#: The paper's recovery design (paper.md §5.1): M = 3, d = (100, 500, 800),
#: all 7 blocks with r_S = 3 (K = 21), noise variance c = 6.
PAPER_DIMS = (100, 500, 800)
PAPER_STRUCTURE = "ABC:3 AB:3 AC:3 BC:3 A:3 B:3 C:3"
PAPER_NOISE = 6.0
QUICK_DIMS = (10, 20, 30)
QUICK_STRUCTURE = "ABC:1 AB:1 AC:1 BC:1 A:1 B:1 C:1"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="tiny sizes, 3 runs (CI smoke mode)")
    p.add_argument("--runs", type=int, default=None, help="repetitions per measurement (>= 3)")
    p.add_argument("--threads", type=int, default=None, help="BLAS threads (default: all cores)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="wall: perf_counter; cpu: process CPU time with 1 BLAS thread "
                        "(robust to other load on a shared machine)")
    return p


#: Clock used by :func:`side_by_side` (set by the scripts from ``--clock``).
CLOCK = {"fn": time.perf_counter}


def use_clock(kind: str) -> int | None:
    """Select the timing clock; returns the thread count it implies (cpu: 1)."""
    CLOCK["fn"] = time.process_time if kind == "cpu" else time.perf_counter
    return 1 if kind == "cpu" else None


def problem(quick: bool, rng: int = 0) -> hs.HierarchicalFactorModel:
    dims, st = (QUICK_DIMS, QUICK_STRUCTURE) if quick else (PAPER_DIMS, PAPER_STRUCTURE)
    return hs.HierarchicalFactorModel.random(dims, st, noise_var=PAPER_NOISE, rng=rng)


@dataclass
class Row:
    name: str
    goal: str
    ratios: list[float] = field(default_factory=list)
    num: list[float] = field(default_factory=list)
    den: list[float] = field(default_factory=list)
    note: str = ""

    def cells(self) -> list[str]:
        r = self.ratios
        if not r:
            return [self.name, "n/a", "n/a", "n/a", "n/a", self.goal, self.note]
        med = statistics.median(r)
        return [
            self.name,
            f"{med:.3g}",
            f"{min(r):.3g} – {max(r):.3g}",
            f"{statistics.median(self.num):.3g}",
            f"{statistics.median(self.den):.3g}",
            self.goal,
            self.note,
        ]


def side_by_side(name: str, goal: str, candidate: Callable[[], object],
                 baseline: Callable[[], object], runs: int, note: str = "") -> Row:
    """Time ``candidate`` and ``baseline`` back to back ``runs`` times (one warm-up)."""
    candidate(), baseline()  # warm-up: imports, BLAS thread pools, caches
    row = Row(name, goal, note=note)
    clock = CLOCK["fn"]
    for _ in range(runs):
        t0 = clock()
        candidate()
        t1 = clock()
        baseline()
        t2 = clock()
        row.num.append(t1 - t0)
        row.den.append(t2 - t1)
        row.ratios.append((t1 - t0) / (t2 - t1))
    print(f"  {name}: ratios {[round(r, 3) for r in row.ratios]}", file=sys.stderr, flush=True)
    return row


def table(rows: list[Row]) -> str:
    head = ["measurement", "ratio (median)", "ratio min – max", "candidate s", "baseline s", "goal", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines)


def machine() -> str:
    try:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        load = "n/a"
    from threadpoolctl import threadpool_info

    blas = {i.get("internal_api") for i in threadpool_info()}
    return (f"python {platform.python_version()}, numpy {np.__version__}, "
            f"{os.cpu_count()} cpus, BLAS {sorted(blas)}, load average {load}")


def limit_threads(n: int | None):
    from threadpoolctl import threadpool_limits

    return threadpool_limits(n or os.cpu_count())
