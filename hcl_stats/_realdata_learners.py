"""The learner survey of ``hcl-stats real-data-report`` (private module).

Writes ``learners.md``: for every data set, raw and preprocessed ('feature': centred,
standardised columns, views scaled to total variance 1), every structure learner's
structure or typed refusal, its block evidence and bootstrap selection frequencies
(:mod:`hcl_stats._learner_survey`). Deterministic given the seed, except the
seconds column and which stages finish within ``--learner-timeout``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__: list[str] = []

PREPROCESSING = (("raw", "none"), ("preprocessed", "feature"))


def _views(ds):
    obs = getattr(ds.data, "observed", None)
    if obs is None:
        return ds.data, ""
    import numpy as np

    from .model import MultimodalData

    data = ds.data.complete_cases()
    keep = [np.ptp(x, axis=0) > 0 for x in data.Xs]
    dropped = sum(int((~k).sum()) for k in keep)
    data = MultimodalData([x[:, k] for x, k in zip(data.Xs, keep, strict=True)])
    dims = ", ".join(str(d) for d in data.dims)
    return data, (f" Learners see the {data.n_samples} complete cases of {ds.n_samples} "
                  f"samples (block evidence needs complete rows), without the {dropped} "
                  f"columns that are constant on them (d_m = {dims}).")


def write_survey(names: list[str], out: Path, args: argparse.Namespace) -> None:
    """Run the survey on ``names`` and write ``out / 'learners.md'``."""
    from . import datasets
    from ._learner_survey import learner_names, run_learner, survey_markdown
    from .block_evidence import default_null_draws
    from .exceptions import ValidationError
    from .preprocessing import Preprocessor

    known = learner_names()
    chosen = known if args.learners == "all" else tuple(
        x.strip() for x in args.learners.split(",") if x.strip())
    for x in chosen:
        if x not in known:
            raise ValidationError(f"--learners entries must be among {', '.join(known)}; got {x!r}.")
    draws = "" if args.null_draws is None else f" --null-draws {args.null_draws}"
    lines = [
        "# Structure learners on real data",
        "",
        "Regenerate with `hcl-stats real-data-report --only-learners` "
        f"(--learner-boot {args.learner_boot}{draws} "
        f"--learner-timeout {args.learner_timeout} --seed {args.seed}). Each learner runs "
        "in a child process stopped at the time limit; the seconds column and which "
        "stages finish depend on the machine, everything else on the seed only.",
        "",
        "Outcome 'fitted' means the learner returned a fit on its structure; 'typed "
        "refusal' an `hcl_stats.exceptions` error naming the rule; 'crash' any other "
        "exception. `eigen` and `correlation` are `workflow.select_structure` methods, "
        "refitted with the default estimator. Block evidence (docs/block_evidence.md): "
        "signal l_1 = debiased leading spike of the block's Schur complement, edge = "
        "sigma^2 sqrt(d_S / (n - 1 - k_O)), p-value of H0: r_S = 0 by parametric "
        "bootstrap (by default only where d <= 300 and M <= 4, the rule of `hcl-stats "
        "fit`); freq = share of bootstrap resamples (learner told n/2 samples) "
        "selecting the block, freq (rank) = with the fitted rank.",
        "",
    ]
    for name in names:
        try:
            ds = datasets.load(name)
        except (FileNotFoundError, ImportError) as exc:
            lines += [f"## {name}", "", f"Skipped: {exc}", ""]
            continue
        raw, note = _views(ds)
        lines += [f"## {name}", "",
                  f"Views (d_m): {', '.join(f'{v} ({d})' for v, d in zip(ds.view_names, ds.dims, strict=True))}; "
                  f"n = {raw.n_samples}.{note}", ""]
        n_null = default_null_draws(raw.dims) if args.null_draws is None else args.null_draws
        if args.null_draws is None and not n_null:
            lines += [f"No test of H0: r_S = 0 at this size by default (d = {sum(raw.dims)}, "
                      f"M = {len(raw.dims)}): signal and edge only; `--null-draws N` asks "
                      "for it.", ""]
        for label, scale in PREPROCESSING:
            views = raw if scale == "none" else Preprocessor.fit(raw, scale=scale).transform(raw)
            runs = []
            for learner in chosen:
                print(f"learners: {name} {label} {learner}", file=sys.stderr, flush=True)
                runs.append(run_learner(learner, views, n_null=n_null,
                                        n_boot=args.learner_boot, seed=args.seed,
                                        timeout=args.learner_timeout))
            lines += survey_markdown(f"{name}, {label}", runs, tuple(ds.view_names),
                                     args.learner_boot)
        (out / "learners.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "learners.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out / 'learners.md'}", file=sys.stderr)
