"""``hcl-stats fit`` (default estimator) from a file vs a process that loads it and forms X^T X.

Both are whole processes, run back to back in each repetition (one warm-up):
the candidate is ``hcl-stats fit DATA.npz --structure 'ABC:3 AB:3 ...' --out ...`` with the
default estimator; the baseline is ``benchmarks/load_gram.py DATA.npz``
(``numpy.load``, stack the views, ``X^T X``). The data are the paper design
(d = (100, 500, 800), all 7 blocks with r_S = 3, noise 6) at n = 30,000, written
once to a temporary ``.npz``. ``--clock cpu`` compares the children's CPU time
(user + system, 1 BLAS thread), ``wall`` their elapsed time (all cores).
``--profile`` also prints the CPU split of one fit (cProfile with a CPU clock).
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _harness import PAPER_NOISE, Row, machine, parser, problem, table  # noqa: E402

HERE = Path(__file__).resolve().parent

#: (label, function name as cProfile reports it) of the CPU split.
PHASES = [
    ("read .npz (memory-mapped, CRC-checked)", "read_views"),
    ("validate views (no copy of a read-only memory map)", "__init__", "model.py"),
    ("column-scale check (ScaleWarning)", "check_scales"),
    ("constant-column check", "_check_columns_vary"),
    ("sample covariance (chunked syrk)", "streaming_cov"),
    ("sigma^2: all eigenvalues of S (MP correction)", "_noise_for_shrinkage"),
    ("Schur start (13 subset eigh)", "schur_loadings"),
    ("refinement iterations (L-BFGS)", "_minimise"),
    ("per-block shrinkage", "shrink_blocks"),
    ("write result .npz", "_atomic_savez"),
]


def write_data(path: Path, quick: bool) -> None:
    model = problem(quick)
    data = model.sample(2000 if quick else 30000, rng=1)
    np.savez(path, **{chr(ord("A") + m): x for m, x in enumerate(data.Xs)})


def _child_env(threads: int | None) -> dict:
    env = dict(os.environ)
    root = str(HERE.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    if threads:
        for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[k] = str(threads)
    return env


def _timed(cmd: list[str], env: dict, cpu: bool) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    spent = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return spent if cpu else wall


def profile_split(data: Path, out: Path, structure: str) -> list[tuple[str, float]]:
    """CPU seconds of each phase of one in-process ``hcl-stats fit``."""
    from threadpoolctl import threadpool_limits

    from hcl_stats.cli import main

    argv = ["fit", str(data), "--structure", structure, "--out", str(out)]
    prof = cProfile.Profile(time.process_time)
    with threadpool_limits(1), contextlib.redirect_stdout(io.StringIO()):
        # first without the profiler (its overhead would inflate the total), then
        # profiled for the split (imports the first run paid are then done)
        t0 = time.process_time()
        main(argv)
        total = time.process_time() - t0
        prof.enable()
        main(argv)
        prof.disable()
    stats = pstats.Stats(prof).stats
    rows = []
    for label, func, *where in PHASES:
        cum = [v[3] for (file, _, name), v in stats.items()
               if name == func and (not where or file.endswith(where[0]))]
        rows.append((label, max(cum) if cum else float("nan")))
    rows.append(("whole fit command (after imports; first run, not profiled)", total))
    return rows


def run(quick: bool = False, runs: int | None = None, threads: int | None = None,
        cpu: bool = False, profile: bool = False) -> list[Row]:
    runs = runs or (3 if quick else 5)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "views.npz"
        write_data(data, quick)
        env = _child_env(1 if cpu else threads)
        out = Path(tmp) / "fit.npz"
        structure = str(problem(quick).structure)
        # what the hcl-stats console script runs (cli.entry_point), from this checkout
        fit = [sys.executable, "-c", "import sys; from hcl_stats.cli import main; "
               "sys.exit(main(sys.argv[1:]))", "fit", str(data), "--structure", structure,
               "--out", str(out)]
        base = [sys.executable, str(HERE / "load_gram.py"), str(data)]
        row = Row("hcl-stats fit (default estimator) / (load + X^T X), whole processes",
                  "<= 1.5", note=f"n = {2000 if quick else 30000}, d = "
                  f"{sum(problem(quick).dims)}, noise {PAPER_NOISE}, "
                  f"{'CPU (user+sys), 1 BLAS thread' if cpu else 'wall'}")
        _timed(fit, env, cpu), _timed(base, env, cpu)  # warm-up (page cache, imports)
        for _ in range(runs):
            a = _timed(fit, env, cpu)
            b = _timed(base, env, cpu)
            row.num.append(a)
            row.den.append(b)
            row.ratios.append(a / b)
        print(f"  fit/(load+XtX): ratios {[round(r, 3) for r in row.ratios]}", file=sys.stderr)
        rows.append(row)
        if profile:
            split = profile_split(data, out, structure)
            split.insert(0, ("python start-up + imports (process CPU minus the in-process fit)",
                             float(np.median(row.num)) - split[-1][1]))
            for label, secs in split:
                r = Row(f"profile: {label}", "-", note="CPU s of one in-process fit, 1 BLAS thread")
                r.ratios, r.num, r.den = [secs / max(row.den[0], 1e-9)], [secs], [row.den[0]]
                rows.append(r)
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--profile", action="store_true", help="also print the CPU split of one fit")
    args = p.parse_args(argv)
    rows = run(args.quick, args.runs, args.threads, cpu=args.clock == "cpu", profile=args.profile)
    print(machine() + f", clock {args.clock}")
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
