"""Wide views (d_m >> n): the sample-space path against its baselines and MOFA+.

Rows (ratios measured side by side in one run; median and min - max):

1. ``masked_shrink`` on the sample path / the same fit on the covariance path
   (at ``d = (250, 500, 750), n = 100``: the covariance path costs O(d^3) and is
   repeated; at the goal size it takes minutes per fit);
2. load + fit (sample path) / load + one thin SVD of the centred data;
   the same with the structure learned first (``learn_structure``, the default
   ``schur_select``, as ``hcl-stats fit`` without ``--structure``), the same
   with the block test's parametric bootstrap (``block_evidence(n_null=19)``, as
   ``hcl-stats fit --evidence --null-draws 19``; its null draws are drawn in
   factor form and reduced), and
   ``schur_select`` and ``convex_fast`` on the sample path / on the covariance
   path (smaller size);
3. MOFA+ (mofapy2) / our default fit on the same data, with accuracy;
4. peak resident memory of one fit in a fresh process (``/usr/bin/time -v``),
   for the moderate size and for the large one (time and memory; ``--big-runs``).

Sizes: ``--dims 1000,2000,3000 --n 200`` (structure ``all:2``); the large size
``--big-dims 5000,10000,20000 --big-n 500``. ``--quick`` runs tiny sizes. Rows 2
and 4 time the whole child process's work after its imports: loading the .npz,
then the fit or the SVD (``load_wall`` in the JSON is the load alone). Our fit
is given the true structure; MOFA+ learns its own (its block F1 is earned, ours
holds by construction).

Accuracy is the relative Gram error against the true loadings (an **oracle**
metric: it uses the simulation's truth) and the block F1 of the structure.
``--learner-seeds 0,1,2,3,4`` instead scores the structures that ``schur_select``
learns with either edge rule (and MOFA+'s), against the truth, and the oracle Gram
error of our default fit on each learned structure next to MOFA+'s: the
comparison in which neither method is given the structure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import hcl_stats as hs

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import _harness  # noqa: E402
from _harness import Row, limit_threads, machine, parser, side_by_side, table, use_clock  # noqa: E402

_CHILD = r"""
import json, sys, time, warnings
import numpy as np
import hcl_stats as hs
import hcl_stats.estimators  # imported on first use: outside the timed fit
warnings.simplefilter("ignore")
path, structure, est_name, how = sys.argv[1:5]
t0 = time.perf_counter(); c0 = time.process_time()  # the load is timed too
with np.load(path) as f:
    xs = [f[k] for k in f.files]
t_load, c_load = time.perf_counter() - t0, time.process_time() - c0
if how == "fit":
    fit = hs.estimators.get(est_name)().fit(xs, structure=structure)
    info = {"path": fit.diagnostics.extra["path"]}
elif how == "learn":  # hcl-stats fit without --structure: learn (schur_select), then fit
    from hcl_stats.estimators.learn import learn_structure
    learned = learn_structure(xs)
    fit = hs.estimators.get(est_name)().fit(xs, structure=learned.structure)
    info = {"path": fit.diagnostics.extra["path"], "learned": str(learned.structure)}
elif how == "evidence":  # hcl-stats fit --evidence --null-draws 19, structure known
    from hcl_stats.block_evidence import block_evidence
    fit = hs.estimators.get(est_name)().fit(xs, structure=structure)
    ev = block_evidence(xs, fit, n_null=19, rng=0)
    info = {"path": fit.diagnostics.extra["path"],
            "p_values": {r.name: r.p_value for r in ev.rows}}
else:  # load + one thin SVD of the centred stacked data
    x = np.hstack(xs)
    np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
    info = {}
info.update(wall=time.perf_counter() - t0, cpu=time.process_time() - c0,
            load_wall=t_load, load_cpu=c_load)
print(json.dumps(info))
"""


#: Singular values of every W_m^S: spikes a^2 in [9, 25] are above the
#: Marchenko-Pastur detection limit sigma^2 sqrt(d_S / n) (at most 5.5 here), so
#: the structure is recoverable and accuracy comparisons mean something.
SINGULAR_VALUES = (3.0, 5.0)


def _data(dims, n, structure, seed=0):
    model = hs.HierarchicalFactorModel.random(dims, structure, noise_var=1.0,
                                              singular_values=SINGULAR_VALUES, rng=seed)
    return model, model.sample(n, rng=np.random.default_rng(seed + 1))


def _peak(path: Path, structure: str, est: str, how: str) -> dict:
    """Run one fit in a fresh process under /usr/bin/time -v: peak RSS and times."""
    env = dict(os.environ)
    if _harness.CLOCK["fn"] is time.process_time:  # cpu clock: one BLAS thread
        env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, "-c", _CHILD, str(path), structure, est, how],
        capture_output=True, text=True, check=True, env=env,
    )
    info = json.loads(out.stdout.strip().splitlines()[-1])
    for line in out.stderr.splitlines():
        if "Maximum resident set size" in line:
            info["peak_mib"] = int(line.split()[-1]) / 1024.0
    return info


def _pairs(name, goal, candidate, baseline, runs, warm=True):
    """Like ``side_by_side``; ``warm=False`` skips the warm-up (costly baselines)."""
    if warm:
        return side_by_side(name, goal, candidate, baseline, runs)
    row, clock = Row(name, goal), _harness.CLOCK["fn"]
    out = None
    for _ in range(runs):
        t0 = clock()
        out = candidate()
        t1 = clock()
        baseline()
        t2 = clock()
        row.num.append(t1 - t0)
        row.den.append(t2 - t1)
        row.ratios.append((t1 - t0) / (t2 - t1))
    print(f"  {name}: ratios {[round(r, 3) for r in row.ratios]}", file=sys.stderr, flush=True)
    return row, out


def _accuracy(fit, model):
    sup = hs.metrics.support_scores(fit, model)
    return {
        "gram_error_oracle": hs.metrics.overall_gram_error(fit, model, relative=True),
        "block_f1": sup["block_f1"], "exact": sup["exact"], "structure": str(fit.structure),
    }


def _mofa_fit(model, data):
    """MOFA+ with as many factors as the true total rank, seeded (the accuracy tables)."""
    return hs.estimators.get("mofa")(n_factors=model.structure.total_rank).fit(data, rng=0)


def _mofa_row(model, data, runs):
    mofa = hs.estimators.get("mofa")(n_factors=model.structure.total_rank)
    ours = hs.estimators.MaskedShrink()
    fits = {}

    def run_mofa():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits["MOFA+"] = mofa.fit(data, rng=0)
        return fits["MOFA+"]

    def run_ours():
        fits["ours"] = ours.fit(data, structure=model.structure)
        return fits["ours"]

    row, _ = _pairs("MOFA+ (mofapy2) / our default fit (masked_shrink, sample path)",
                    ">= 100", run_mofa, run_ours, runs, warm=False)
    return row, {k: _accuracy(v, model) for k, v in fits.items()}


def accuracy_rows(dims, n, structure, seeds) -> tuple[list[Row], dict]:
    """Oracle accuracy of MOFA+ and of ``masked_shrink`` (both weightings) per data seed.

    One row per variant of ours: the ratio of its relative Gram error to MOFA+'s
    on the same data (below 1: ours is more accurate), with median and min - max
    over the seeds. MOFA+ learns its structure; ours is given the true one.
    """
    variants = {"masked_shrink (default: view weights)": hs.estimators.MaskedShrink(),
                "masked_shrink(view_weights=False)": hs.estimators.MaskedShrink(view_weights=False)}
    rows = {k: Row(f"oracle Gram error: {k} / MOFA+ (d={dims}, n={n}, {structure})",
                   "<= 1", note="accuracy, not time: below 1 means more accurate than MOFA+")
            for k in variants}
    per_seed = {}
    for seed in seeds:
        model, data = _data(dims, n, structure, seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            errs = {"MOFA+": _accuracy(_mofa_fit(model, data), model)["gram_error_oracle"]}
            for k, est in variants.items():
                errs[k] = _accuracy(est.fit(data, structure=model.structure),
                                    model)["gram_error_oracle"]
        for k, row in rows.items():
            row.num.append(errs[k])
            row.den.append(errs["MOFA+"])
            row.ratios.append(errs[k] / errs["MOFA+"])
        per_seed[seed] = errs
        print(f"  seed {seed}: " + ", ".join(f"{k} {v:.4f}" for k, v in errs.items()),
              file=sys.stderr, flush=True)
    return list(rows.values()), per_seed


def learner_table(dims, n, structure, seeds, mofa=True) -> tuple[str, dict]:
    """Structure recovery on the wide design: ``learn_structure`` with both edge rules
    of ``schur_select`` (and MOFA+'s own structure), one data set per seed.

    Scores against the truth (``hcl_stats.metrics.support_scores``): block F1 over
    (view, block) pairs, structure F1 over blocks, exact blocks, exact blocks and
    ranks; and the oracle relative Gram error of the fit on the learned structure
    (our default fit, ``MaskedShrink()``, refitted on it; MOFA+'s own loadings),
    with its per-seed ratio to MOFA+'s when MOFA+ runs. Returns a Markdown table
    (means over the seeds; the ratio's median and min - max) and the per-seed results.
    """
    from hcl_stats.estimators.learn import learn_structure

    learners = {"schur_select, rule 'bound' (default)": {"rule": "bound"},
                "schur_select, rule 'sharp'": {"rule": "sharp"}}
    if mofa:
        learners["MOFA+ (its own structure)"] = None
    per_seed: dict = {k: [] for k in learners}
    for seed in seeds:
        model, data = _data(dims, n, structure, seed=seed)
        for name, opts in learners.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if opts is None:
                    fit = _mofa_fit(model, data)
                    found = fit.structure
                else:
                    found = learn_structure(data, options=opts).structure
                    fit = hs.estimators.MaskedShrink().fit(data, structure=found)
            sc = hs.metrics.support_scores(found, model)
            per_seed[name].append({"seed": seed, "structure": str(found),
                                   "block_f1": sc["block_f1"],
                                   "structure_f1": sc["structure_f1"], "exact": sc["exact"],
                                   "ranks_exact": float(found == model.structure),
                                   "gram": hs.metrics.overall_gram_error(fit, model,
                                                                         relative=True)})
            print(f"  seed {seed} {name}: {found} (block F1 {sc['block_f1']:.3f})",
                  file=sys.stderr, flush=True)
    lines = [f"Structure recovery, d = {dims}, n = {n}, truth {structure} "
             f"(seeds {','.join(map(str, seeds))}; means over the seeds)", "",
             "| learner | block F1 | structure F1 | exact blocks | exact blocks and ranks "
             "| oracle Gram error of the fit | / MOFA+'s (median, min - max) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    ref = per_seed.get("MOFA+ (its own structure)")
    for name, res in per_seed.items():
        mean = {k: float(np.mean([r[k] for r in res]))
                for k in ("block_f1", "structure_f1", "exact", "ranks_exact", "gram")}
        ratio = "-"
        if ref is not None:
            r = np.array([a["gram"] / b["gram"] for a, b in zip(res, ref, strict=True)])
            ratio = f"{np.median(r):.3f} ({r.min():.3f} - {r.max():.3f})"
        lines.append(f"| {name} | {mean['block_f1']:.3f} | {mean['structure_f1']:.3f} | "
                     f"{mean['exact']:.2f} | {mean['ranks_exact']:.2f} | "
                     f"{mean['gram']:.4f} | {ratio} |")
    return "\n".join(lines), per_seed


def shrinkage_ceiling(fit, model) -> float:
    """Oracle estimate of the best shrinkage: the lowest relative Gram error of a
    factor ``F_m^S = V_m^S B_m^S`` on the fit's own directions (``V_m^S``: an
    orthonormal basis of the column space of each view's part of each block of
    ``fit``, parts shrunk to zero left out; one free ``rank x r_S`` matrix ``B_m^S``
    per view and block). The problem is not convex: this is the local minimum
    L-BFGS reaches from the fit's own coefficients. It uses the truth, so it is an
    **oracle** figure.
    """
    from scipy.optimize import minimize

    w_hat, w = np.asarray(fit.loadings), np.asarray(model.loadings)
    off = np.concatenate([[0], np.cumsum(model.dims)])
    bases, slots, x0 = [], [], []
    for b in fit.structure.blocks:
        cols = fit.structure.columns(b)
        for m in sorted(b):
            part = w_hat[off[m]:off[m + 1], cols]
            u, sv, vt = np.linalg.svd(part, full_matrices=False)
            keep = sv > 1e-12 * sv[0] if sv.size and sv[0] > 0 else np.zeros(sv.size, bool)
            if not np.any(keep):
                continue  # nothing of this view in the block: no direction to weight
            u, sv, vt = u[:, keep], sv[keep], vt[keep]
            q = np.zeros((w.shape[0], u.shape[1]))
            q[off[m]:off[m + 1]] = u
            slots.append((sum(x.shape[1] for x in bases), u.shape[1], cols))
            bases.append(q)
            x0.append((sv[:, None] * vt).ravel())
    q = np.hstack(bases)
    qq, qw = q.T @ q, q.T @ w
    target, g2 = qw @ qw.T, float(np.linalg.norm(w.T @ w) ** 2)

    def coef(x):
        b, at = np.zeros((q.shape[1], w_hat.shape[1])), 0
        for row, r, cols in slots:
            size = r * (cols.stop - cols.start)
            b[row:row + r, cols] = x[at:at + size].reshape(r, -1)
            at += size
        return b

    def loss(x):
        b = coef(x)
        c = b @ b.T
        a = qq @ c @ qq
        grad_b = 4.0 * (a - target) @ b
        grad = np.concatenate([grad_b[row:row + r, cols].ravel() for row, r, cols in slots])
        return float(np.sum(c * a) - 2.0 * np.sum(c * target) + g2), grad

    res = minimize(loss, np.concatenate(x0), jac=True, method="L-BFGS-B",
                   options={"maxiter": 5000})
    return float(np.sqrt(max(res.fun, 0.0) / g2))


def ceiling_table(dims, n, structure, seeds) -> tuple[str, dict]:
    """Our default fit's relative Gram error, its shrinkage ceiling
    (:func:`shrinkage_ceiling`) and MOFA+'s, per data seed (all oracle figures)."""
    rows, out = [], {}
    for seed in seeds:
        model, data = _data(dims, n, structure, seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = hs.estimators.MaskedShrink().fit(data, structure=model.structure)
            mofa = _mofa_fit(model, data)
        out[seed] = {"ours": hs.metrics.overall_gram_error(fit, model, relative=True),
                     "ceiling": shrinkage_ceiling(fit, model),
                     "MOFA+": hs.metrics.overall_gram_error(mofa, model, relative=True)}
        rows.append(f"| {seed} | {out[seed]['ours']:.4f} | {out[seed]['ceiling']:.4f} | "
                    f"{out[seed]['MOFA+']:.4f} |")
        print(f"  seed {seed}: {out[seed]}", file=sys.stderr, flush=True)
    head = [f"Shrinkage ceiling, d = {dims}, n = {n}, {structure} (oracle figures)", "",
            "| seed | default fit | best shrinkage of its directions | MOFA+ |",
            "|---|---:|---:|---:|"]
    return "\n".join(head + rows), out


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def run(quick=False, runs=3, dims=(1000, 2000, 3000), n=200, structure="all:2",
        big_dims=(5000, 10000, 20000), big_n=500, paths_dims=(250, 500, 750), paths_n=100,
        mofa=True, big=True, big_runs=1):
    if quick:
        dims, n, big_dims, big_n = (20, 40, 60), 30, (40, 80, 120), 35
        paths_dims, paths_n = (20, 40, 60), 30
    rows, extra = [], {}
    # 1. the two paths on the same wide data (the covariance path is O(d^3): a
    #    smaller wide size, so that it can be repeated)
    pmodel, pdata = _data(paths_dims, paths_n, structure, seed=5)
    fits = {  # label -> fit on a given path
        "masked_shrink": lambda path: hs.estimators.MaskedShrink().fit(
            pdata, structure=structure, path=path),
        "schur_select (structure learned)": lambda path: hs.estimators.SchurSelect().fit(
            pdata, path=path),
        "convex_fast (structure learned)": lambda path: hs.estimators.ConvexFast().fit(
            pdata, path=path),
    }
    for label, fit in fits.items():
        row, _ = _pairs(f"{label}, sample path / covariance path (d={paths_dims}, "
                        f"n={paths_n})", "-", lambda f=fit: f("samples"),
                        lambda f=fit: f("covariance"), runs, warm=False)
        rows.append(row)
    model, data = _data(dims, n, structure)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "wide.npz"
        np.savez(path, *data.Xs)
        child = {m: [] for m in ("fit", "svd", "learn", "evidence")}  # child mode -> runs
        for _ in range(runs):
            for how, runs_ in child.items():
                runs_.append(_peak(path, structure, "masked_shrink", how))
        key = "cpu" if _harness.CLOCK["fn"] is time.process_time else "wall"
        svd_runs = child["svd"]
        for label, runs_ in (("fit", child["fit"]), ("learn structure + fit", child["learn"]),
                             ("fit + block test (19 null draws per null)", child["evidence"])):
            row = Row(f"load + {label} / load + one thin SVD of X (d={dims}, n={n}, "
                      "fresh process)", "fit <= 2 s, <= 300 MB" if label == "fit" else "-",
                      note=f"peak {max(f['peak_mib'] for f in runs_):.0f} MiB")
            for f, s in zip(runs_, svd_runs, strict=True):
                row.num.append(f[key])
                row.den.append(s[key])
                row.ratios.append(f[key] / s[key])
            rows.append(row)
        extra["moderate"] = child
        if big:
            bmodel, bdata = _data(big_dims, big_n, structure, seed=3)
            bpath = Path(tmp) / "big.npz"
            np.savez(bpath, *bdata.Xs)
            extra["big_data_mib"] = sum(x.nbytes for x in bdata.Xs) / 2**20
            del bdata
            extra["big"] = [_peak(bpath, structure, "masked_shrink", "fit")
                            for _ in range(big_runs)]
    if mofa:
        row, acc = _mofa_row(model, data, runs)
        rows.append(row)
        extra["accuracy"] = acc
    return rows, extra


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--no-mofa", action="store_true")
    p.add_argument("--no-big", action="store_true")
    p.add_argument("--big-runs", type=int, default=1)
    p.add_argument("--dims", type=_ints, default=(1000, 2000, 3000),
                   help="d_m of the moderate size, comma-separated (default 1000,2000,3000)")
    p.add_argument("--n", type=int, default=200, help="samples of the moderate size")
    p.add_argument("--big-dims", type=_ints, default=(5000, 10000, 20000),
                   help="d_m of the large size (default 5000,10000,20000)")
    p.add_argument("--big-n", type=int, default=500, help="samples of the large size")
    p.add_argument("--accuracy-seeds", type=_ints, default=None, metavar="S1,S2,...",
                   help="instead of the timings: the oracle accuracy of MOFA+ and of "
                        "masked_shrink (default view weights, and view_weights=False) on "
                        "the moderate size, one data set per seed (MOFA+ takes 12 - 20 s "
                        "per fit)")
    p.add_argument("--ceiling-seeds", type=_ints, default=None, metavar="S1,S2,...",
                   help="instead of the timings: per seed, the oracle Gram error of our "
                        "default fit, the lowest any per-view, per-block shrinkage of its "
                        "directions reaches, and MOFA+'s")
    p.add_argument("--learner-seeds", type=_ints, default=None, metavar="S1,S2,...",
                   help="instead of the timings: structure recovery of schur_select with "
                        "both edge rules (and of MOFA+ unless --no-mofa) on the moderate "
                        "size, one data set per seed, and the oracle Gram error of our "
                        "default fit on the learned structure")
    args = p.parse_args(argv)
    modes = [f for f in ("accuracy_seeds", "ceiling_seeds", "learner_seeds")
             if getattr(args, f) is not None]
    if len(modes) > 1:
        p.error("give at most one of --accuracy-seeds, --ceiling-seeds and --learner-seeds; "
                f"got {', '.join('--' + m.replace('_', '-') for m in modes)}")
    threads = use_clock(args.clock) or args.threads
    if args.ceiling_seeds is not None or args.learner_seeds is not None:
        with limit_threads(threads):
            if args.ceiling_seeds is not None:
                text, extra = ceiling_table(args.dims, args.n, "all:2", args.ceiling_seeds)
            else:
                text, extra = learner_table(args.dims, args.n, "all:2", args.learner_seeds,
                                            mofa=not args.no_mofa)
        print(text)
        print()
        print("```json")
        print(json.dumps(extra, indent=1, default=float))
        print("```")
        return
    with limit_threads(threads):
        if args.accuracy_seeds is not None:
            rows, extra = accuracy_rows(args.dims, args.n, "all:2", args.accuracy_seeds)
        else:
            rows, extra = run(quick=args.quick, runs=args.runs or 3, mofa=not args.no_mofa,
                              big=not args.no_big, big_runs=args.big_runs, dims=args.dims,
                              n=args.n, big_dims=args.big_dims, big_n=args.big_n)
    print(f"<!-- {machine()}; clock {args.clock} -->")
    print(table(rows))
    print()
    print("```json")
    print(json.dumps(extra, indent=1, default=float))
    print("```")


if __name__ == "__main__":
    main()
