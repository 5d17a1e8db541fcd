"""Benchmark: our first-order solvers vs cvxpy (Clarabel, SCS) on the convex relaxation.

Usage::

    nice python benchmarks/convex.py                 # all sizes, writes a table
    nice python benchmarks/convex.py --sizes 10,20,30 --solvers CLARABEL

For each size, data are drawn from the paper's generator (all 2^M - 1 blocks of
rank r, noise variance c, n samples), the penalty is the default rule
(``default_penalty``), and the same program (P_lambda) of docs/convex.md is
solved by

* ``factored``: our L-BFGS-on-factors solver with certified duality gap;
* ``prox``: our FISTA with eigenvalue soft-thresholding (small sizes only);
* cvxpy with each solver, in a child process with a memory cap (RLIMIT_AS) and a
  wall-clock timeout, so that a solver that cannot finish is reported instead of
  taking the machine down.

Reported: CPU time of the process (cvxpy: compile + solve, child process; the
machine is shared, so CPU seconds are fairer than wall time), the ratio cvxpy / ours, the
relative objective gap ``(f_cvxpy - f_ours) / |f_ours|`` (positive = ours lower),
our certified relative duality gap, and whether the selected supports agree.
All BLAS is single-threaded for a fair comparison.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import hcl_stats as hs  # noqa: E402
from hcl_stats.estimators._convex_core import (  # noqa: E402
    CvxpyProgram,
    Layout,
    candidate_blocks,
    factors_to_mats,
    objective,
    solve_factored,
    solve_prox,
)
from hcl_stats.estimators.convex import default_penalty, select_from_solution  # noqa: E402
from hcl_stats.estimators.selection import estimate_noise_var_mp  # noqa: E402

#: (dims, rank, noise variance, n): the issue's two sizes plus small ones where
#: interior point fits in memory.
CONFIGS = {
    "10,20,30": ((10, 20, 30), 2, 1.0, 5000),
    "20,40,60": ((20, 40, 60), 2, 1.0, 5000),
    "50,100,150": ((50, 100, 150), 2, 1.0, 5000),
    "100,500,800": ((100, 500, 800), 3, 6.0, 5000),
}


def problem(key: str, penalty_scale: float = 1.0):
    dims, r, c, n = CONFIGS[key]
    seq = np.random.SeedSequence(2026, spawn_key=(len(dims), *dims))
    g_model, g_data = (np.random.default_rng(s) for s in seq.spawn(2))
    model = hs.HierarchicalFactorModel.random(dims, f"all:{r}", noise_var=c, rng=g_model)
    cov = model.sample(n, rng=g_data).sample_cov()
    s2 = estimate_noise_var_mp(cov, n)
    s_w = cov - s2 * np.eye(sum(dims))
    layout = Layout.build(dims, candidate_blocks(len(dims)), 0.5)
    lam = default_penalty(s2, dims, n, layout.candidates, layout.weights, scale=penalty_scale)
    return dims, layout, s_w, lam


def support(layout, mats, lam):
    s, _ = select_from_solution(mats, layout, [lam * w for w in layout.weights])
    return str(s)


def worker(args) -> None:
    """Child process: solve with cvxpy and print one JSON line."""
    data = np.load(args.worker_data)
    dims = tuple(int(x) for x in data["dims"])
    s_w, lam = data["s_w"], float(data["lam"])
    layout = Layout.build(dims, candidate_blocks(len(dims)), 0.5)
    t0 = time.process_time()
    program = CvxpyProgram(layout, s_w)
    program.set_data(None, lam)
    t1 = time.process_time()
    out = {"compile_s": t1 - t0}
    try:
        opts = {"eps": 1e-9, "max_iters": 200000} if args.worker_solver == "SCS" else {}
        mats, info = program.solve(args.worker_solver, **opts)
        out.update(status=info["status"], objective=objective(layout, s_w, mats, lam),
                   support=support(layout, mats, lam), solver_stats=info["solver_stats"])
    except Exception as exc:  # the benchmark reports any solver failure
        out.update(status=f"error: {type(exc).__name__}: {str(exc)[:200]}")
    out["total_s"] = time.process_time() - t0
    print(json.dumps(out))


def run_cvxpy(dims, s_w, lam, solver, timeout, mem_gb):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        np.savez(path, s_w=s_w, lam=lam, dims=np.asarray(dims))
        limit = int(mem_gb * 2**30)

        def cap():  # runs in the child before exec
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            os.nice(10)

        cmd = [sys.executable, __file__, "--worker-data", str(path), "--worker-solver", solver]
        start = time.perf_counter()
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  preexec_fn=cap, check=False)
        except subprocess.TimeoutExpired:
            return {"status": f"timeout > {timeout:.0f} s wall", "total_s": float("nan"),
                    "wall_s": time.perf_counter() - start}
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if not lines:
            tail = (proc.stderr.strip().splitlines() or ["?"])[-1][:160]
            return {"status": f"failed (rc {proc.returncode}): {tail}", "total_s": cpu}
        res = json.loads(lines[-1])
        res["wall_s"] = time.perf_counter() - start
        return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="*", default=list(CONFIGS))
    p.add_argument("--solvers", nargs="*", default=["CLARABEL", "SCS"])
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--mem-gb", type=float, default=6.0)
    p.add_argument("--out", type=Path, default=None, help="write JSON results here")
    p.add_argument("--penalty-scale", type=float, default=1.0,
                   help="multiply the default penalty (smaller: more active blocks)")
    p.add_argument("--worker-data", help=argparse.SUPPRESS)
    p.add_argument("--worker-solver", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker_data:
        worker(args)
        return
    rows = []
    for key in args.sizes:
        dims, layout, s_w, lam = problem(key, args.penalty_scale)
        t0 = time.process_time()
        factors, info = solve_factored(layout, s_w, lam, tol=1e-7)
        t_ours = time.process_time() - t0
        mats = factors_to_mats(layout, factors)
        f_ours = objective(layout, s_w, mats, lam)
        row = {"dims": key, "penalty": lam, "penalty_scale": args.penalty_scale, "ours_s": t_ours, "ours_objective": f_ours,
               "ours_certified_rel_gap": info["relative_gap"], "ours_rounds": info["rounds"],
               "ours_support": support(layout, mats, lam), "cvxpy": {}}
        if sum(dims) <= 60:
            t0 = time.process_time()
            pm, pinfo = solve_prox(layout, s_w, lam, tol=1e-7)
            row["prox_s"] = time.process_time() - t0
            row["prox_rel_diff"] = (objective(layout, s_w, pm, lam) - f_ours) / abs(f_ours)
        print(f"[{key}] ours {t_ours:.2f} s, certified gap {info['relative_gap']:.1e}",
              file=sys.stderr, flush=True)
        for solver in args.solvers:
            res = run_cvxpy(dims, s_w, lam, solver, args.timeout, args.mem_gb)
            if "objective" in res:
                res["rel_objective_gap"] = (res["objective"] - f_ours) / abs(f_ours)
                res["ratio"] = res["total_s"] / t_ours
                res["same_support"] = res["support"] == row["ours_support"]
            row["cvxpy"][solver] = res
            print(f"[{key}] {solver}: {res.get('status')} {res.get('total_s', 0):.1f} s",
                  file=sys.stderr, flush=True)
        rows.append(row)
        if args.out:  # after every size, so an interrupted run keeps its rows
            args.out.write_text(json.dumps(rows, indent=1, default=str))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1, default=str))
    print(table(rows))


def table(rows) -> str:
    head = ("| d | penalty | ours (CPU s) | certified gap | active blocks (ours) | solver | "
            "cvxpy (CPU s) | status | ratio | objective gap | same support |")
    lines = [head, "|" + "---|" * 11]
    for row in rows:
        for solver, res in row["cvxpy"].items():
            ratio = f"{res['ratio']:.0f}x" if "ratio" in res else "-"
            gap = f"{res['rel_objective_gap']:+.1e}" if "rel_objective_gap" in res else "-"
            same = str(res.get("same_support", "-"))
            lines.append(
                f"| ({row['dims']}) | {row['penalty']:.3g} | {row['ours_s']:.2f} "
                f"| {row['ours_certified_rel_gap']:.0e} | {row['ours_support']} | {solver} | {res.get('total_s', float('nan')):.1f} | {res['status']} "
                f"| {ratio} | {gap} | {same} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
