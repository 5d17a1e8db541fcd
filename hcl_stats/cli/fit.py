"""``hcl-stats fit`` and ``hcl-stats check-identifiable``."""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import ValidationError

__all__: list[str] = []

_log = logging.getLogger(__name__)


#: Blocks with more rows than this get no ``gram_<BLOCK>`` array in the output
#: (a ``d_S x d_S`` float64 array of 2000 rows is 32 MB; at 5000 rows, the limit
#: before 2026-12-07, one fit of views with d = (1000, 2000, 3000) wrote 512 MB).
GRAM_MAX_ROWS = 2000


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``fit`` and ``check-identifiable`` sub-commands."""
    from ..estimators import DEFAULT, available

    p = sub.add_parser(
        "fit",
        help="fit the model to multi-view data in .npz, CSV or .h5mu files",
        description=(
            "Fit a hierarchical multi-view factor model and write the estimate to an "
            ".npz file. DATA is either one .npz file whose arrays, in stored order, "
            "are the views (rows = samples), or one CSV file per view: UTF-8 (a "
            "byte-order mark is ignored), numbers separated by commas (or by "
            "semicolons or tabs if the first line has no comma). The first row of a "
            "CSV is a header, and skipped, iff any of its cells is not a number "
            "(a numeric first row is data; one that looks like column numbers "
            "0..p-1 or 1..p is read as data with a warning); --header/--no-header "
            "force the choice. An .h5mu file (MuData; needs the 'mudata' extra) "
            "gives one view per modality, rows aligned on the observation names. "
            "Views are lettered A, B, C, ... in data order."
        ),
        epilog=(
            "Output arrays: loadings (d x K, columns in the canonical block order of "
            "'structure'), noise_var, dims, structure (text form), view_names and "
            "gram_<BLOCK> = W^S W^S^T over the views of each block (written when the "
            f"block has at most {GRAM_MAX_ROWS} rows; otherwise rebuild it from "
            "'loadings'). Example: "
            "hcl-stats fit views.npz --structure 'ABC:3 AB:3 AC:3 BC:3 A:3 B:3 C:3' "
            "--out fit.npz"
        ),
    )
    p.add_argument("data", nargs="*", type=Path,
                   help="an .npz or .h5mu file, or one CSV per view")
    p.add_argument(
        "--structure",
        default=None,
        help="sharing structure, e.g. 'ABC:3 AB:2 C:1', or 'all:R' for every subset; "
        "if omitted it is learned from the data with --select",
    )
    _add_select_arg(p)
    _add_select_rule_arg(p)
    p.add_argument(
        "--dataset",
        default=None,
        help="fit a built-in data set instead of DATA (breast_cancer, mfeat)",
    )
    p.add_argument(
        "--preprocess",
        choices=("none", "view", "feature"),
        default="none",
        help="centre each column and scale each view to total variance 1 ('view'), "
        "or standardise columns then scale views ('feature'); default none",
    )
    p.add_argument(
        "--estimator",
        default=DEFAULT,
        choices=available(),
        help=f"estimator (default: {DEFAULT}, the most accurate with a known structure)",
    )
    _add_view_weights_arg(p)
    p.add_argument(
        "--noise",
        default="scalar",
        help="'scalar' (one sigma^2), 'per_view' (one per view) or a known value "
        "(default: scalar)",
    )
    p.add_argument(
        "--header",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="CSV files: --header skips the first row of each file, --no-header reads "
        "it as data (default: skip it iff one of its cells is not a number)",
    )
    _add_h5mu_args(p)
    _add_evidence_args(p)
    p.add_argument("--out", required=True, type=Path, help="output .npz path")
    p.add_argument(
        "--format",
        choices=("text", "markdown", "latex"),
        default="text",
        help="format of the summary printed on stdout (default: text)",
    )
    p.set_defaults(func=run_fit)

    c = sub.add_parser(
        "check-identifiable",
        help="check the identifiability conditions of a structure and dims",
        description=(
            "Check which identifiability conditions hold for a sharing structure and "
            "view dimensions (see docs/identifiability.md). Exit code 0 if all hold, "
            "1 if any fails."
        ),
    )
    c.add_argument("--dims", required=True, help="comma-separated d_1,...,d_M, e.g. 100,500,800")
    c.add_argument("--structure", required=True, help="e.g. 'ABC:3 AB:2 C:1' or 'all:3'")
    c.add_argument(
        "--noise", choices=("scalar", "per_view"), default="scalar", help="noise model"
    )
    c.add_argument("--json", action="store_true",
                   help="print one JSON object (identifiable, exact_estimators, conditions)")
    c.set_defaults(func=run_check)


def _add_select_arg(p: argparse.ArgumentParser) -> None:
    from ..estimators.learn import DEFAULT_SELECTOR, SELECTORS

    p.add_argument(
        "--select",
        default=None,
        metavar="METHOD",
        help="structure learner when --structure is omitted: one of "
        f"{', '.join(SELECTORS)} (default: {DEFAULT_SELECTOR}; see "
        "docs/structure_learning.md). 'correlation' was the default before; the "
        "learned structure is lowered, if needed, until the refit can fit it",
    )


def _add_select_rule_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--select-rule",
        choices=("bound", "sharp"),
        default=None,
        help="schur_select only (the default learner, or --estimator schur_select): "
        "the edges of its Schur spectra. 'bound' (default) adds a Frobenius bound "
        "on the signal-by-noise cross term; 'sharp' uses unbiased conditioned "
        "spikes, the rank-two cross term and a leak test; it is far better on wide "
        "views (d_m several times n) and needs one noise variance (not with --noise "
        "per_view); docs/convex.md section 8",
    )


def _add_view_weights_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--view-weights",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="masked_shrink only: shrink each view's part of a shared block by its "
        "own estimated signal share (docs/shrinkage.md section 5.6; the default). "
        "--no-view-weights uses one weight per component, the default before "
        "2026-12-08 and what the committed studies pin",
    )


def _add_h5mu_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--join",
        choices=["exact", "inner"],
        default="exact",
        help=".h5mu files: 'exact' requires every modality to hold exactly the "
        "file's observations; 'inner' keeps the observations all modalities share",
    )
    p.add_argument(
        "--modalities",
        default=None,
        metavar="NAMES",
        help=".h5mu files: comma-separated modalities to use as views, in this order "
        "(default: all, in the file's order)",
    )
    p.add_argument("--layer", default=None,
                   help=".h5mu files: the layer of each modality to read (default: X)")


def _parse_dims(text: str) -> tuple[int, ...]:
    try:
        # every comma separates two entries: '5,,7' or '5,6,' is not two or three dims
        dims = tuple(int(x) for x in text.replace(" ", "").split(","))
    except ValueError:
        raise ValidationError(
            f"--dims must be comma-separated positive integers such as 100,500,800; "
            f"got {text!r}."
        ) from None
    return dims


def _build_estimator(args: argparse.Namespace):
    """The estimator of ``--estimator`` with ``--noise`` and ``--view-weights``."""
    from .. import estimators

    kwargs = {"noise_rule": _parse_noise(args.noise)}
    view_weights = getattr(args, "view_weights", None)
    if view_weights is not None:
        if args.estimator != "masked_shrink":
            flag = "--view-weights" if view_weights else "--no-view-weights"
            raise ValidationError(
                f"{flag} applies to --estimator masked_shrink only; got "
                f"--estimator {args.estimator}."
            )
        kwargs["view_weights"] = view_weights
    if getattr(args, "select_rule", None) is not None and args.estimator == "schur_select":
        kwargs["rule"] = args.select_rule
    return estimators.get(args.estimator)(**kwargs)


def _parse_noise(text: str):
    if text in ("scalar", "per_view"):
        return text
    try:
        return float(text)
    except ValueError:
        raise ValidationError(
            f"--noise must be 'scalar', 'per_view' or a positive number; got {text!r}."
        ) from None


def read_views(
    paths: list[Path], header: bool | None = None, h5mu: dict | None = None
) -> tuple[list[np.ndarray], list[str]]:
    """Read views from one .npz (arrays in stored order) or one CSV per view.

    ``header`` is passed to :func:`_read_csv` (None: detect each CSV's header);
    ``h5mu`` holds the keyword arguments of :func:`hcl_stats.datasets.from_mudata`
    (``join``, ``modalities``, ``layer``) for an .h5mu file.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from hcl_stats.cli.fit import read_views
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "views.npz"
    ...     np.savez(path, rna=np.zeros((4, 3)), atac=np.ones((4, 2)))
    ...     views, names = read_views([path])
    >>> [v.shape for v in views], names
    ([(4, 3), (4, 2)], ['rna', 'atac'])
    """
    for path in paths:
        if not path.is_file():
            what = "a directory" if path.is_dir() else "a path that does not exist"
            raise ValidationError(
                f"data file must be an existing file; got {str(path)!r}, {what}."
            )
    if len(paths) == 1 and paths[0].suffix == ".h5mu":
        from ..datasets import from_mudata

        ds = from_mudata(paths[0], **(h5mu or {}))
        return list(ds.data.Xs), list(ds.view_names)
    if len(paths) == 1 and paths[0].suffix == ".npz":
        from .._npz import read_npz

        try:
            views, names = read_npz(paths[0])
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise ValidationError(
                f"data file {str(paths[0])!r} is not a readable .npz: {exc}"
            ) from None
        if not views:
            raise ValidationError(f"data file {str(paths[0])!r} contains no arrays.")
        return views, names
    if any(p.suffix in (".npz", ".h5mu") for p in paths):
        raise ValidationError(
            "data must be a single .npz or .h5mu file or one CSV file per view; got "
            f"{[str(p) for p in paths]}."
        )
    views = [_read_csv(p, header) for p in paths]
    return views, [p.stem for p in paths]


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _split(line: str, delimiter: str) -> list[str]:
    return [t.strip() for t in line.split(delimiter)]


def _read_csv(path: Path, header: bool | None = None) -> np.ndarray:
    """Read one view from a CSV file of numbers (rows = samples).

    Parameters
    ----------
    path : Path
        UTF-8 text (a leading byte-order mark is ignored), cells separated by
        commas, or by semicolons or tabs if the first line has no comma.
    header : bool or None, default=None
        True: the first row is a header and is skipped. False: the first row is
        data. None: the first row is a header iff any of its cells is not a
        number; a first row of column numbers (``0..p-1`` or ``1..p``, ``p >= 3``)
        is read as data with a logged warning.

    Returns
    -------
    ndarray of shape (n_rows, n_columns)
    """
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"CSV file {str(path)!r} must be UTF-8 text; got undecodable bytes ({exc})."
        ) from None
    numbered = [(i + 1, ln) for i, ln in enumerate(text.splitlines()) if ln.strip()]
    lines = [ln for _, ln in numbered]
    if not lines:
        raise ValidationError(
            f"CSV file {str(path)!r} must contain at least one row of numbers; got an "
            "empty file."
        )
    first = lines[0]
    delimiter = "," if "," in first else ";" if ";" in first else "\t" if "\t" in first else ","
    cells = _split(first, delimiter)
    numeric = all(_is_number(c) for c in cells)
    if header is None:
        header = not numeric
        if header:
            _log.info("%s: first row has a non-numeric cell; skipped as a header", path)
        elif len(cells) >= 3 and all(c.isdigit() for c in cells) and [
            int(c) for c in cells
        ] in (list(range(len(cells))), list(range(1, len(cells) + 1))):
            _log.warning(
                "%s: the first row %s looks like column numbers but is read as data "
                "(all its cells are numbers); pass --header to skip it",
                path, ",".join(cells),
            )
        else:
            _log.info("%s: first row is all numbers; read as data (no header)", path)
    elif not header and not numeric:
        bad = next(c for c in cells if not _is_number(c))
        raise ValidationError(
            f"CSV file {str(path)!r} must have a numeric first row with --no-header; "
            f"got the cell {bad!r}. Drop --no-header to skip a header row."
        )
    if header and cells and cells[0] == "":
        _log.warning(
            "%s: the header's first cell is empty, as in a file written with a pandas "
            "index; its first column is read as data (write it with index=False)", path,
        )
    body = lines[1:] if header else lines
    body_numbers = [i for i, _ in numbered[1:]] if header else [i for i, _ in numbered]
    if not body:
        raise ValidationError(
            f"CSV file {str(path)!r} must contain at least one row of numbers; got a "
            "header only."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
            arr = np.loadtxt(io.StringIO("\n".join(body)), delimiter=delimiter, ndmin=2)
    except ValueError as exc:
        raise ValidationError(
            f"CSV file {str(path)!r} could not be parsed: "
            f"{_csv_problem(body, body_numbers, delimiter) or exc}"
        ) from None
    return arr


def _csv_problem(body: list[str], numbers: list[int], delimiter: str) -> str | None:
    """The first malformed data line, by its 1-based line number in the file."""
    width = None
    for number, line in zip(numbers, body, strict=True):
        line = line.split("#", 1)[0]  # np.loadtxt's comments
        if not line.strip():
            continue
        cells = _split(line, delimiter)
        bad = next((c for c in cells if not _is_number(c)), None)
        if bad is not None:
            return f"line {number} has the non-numeric cell {bad!r}."
        if width is None:
            width = len(cells)
        elif len(cells) != width:
            return (f"line {number} has {len(cells)} cells but the first data line has "
                    f"{width}; every row must have the same number of columns.")
    return None


def _check_out(path: Path) -> None:
    """Fail before any computation if ``--out`` cannot be written."""
    directory = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ValidationError(
            f"--out must be a file path; got {str(path)!r}, an existing directory."
        )
    if not directory.is_dir():
        what = "a file" if directory.exists() else "a directory that does not exist"
        raise ValidationError(
            f"--out directory must be an existing directory; got {str(directory)!r}, "
            f"{what}; create it first."
        )
    if not os.access(directory, os.W_OK):
        raise ValidationError(
            f"--out directory must be writable; got {str(directory)!r}."
        )


def _atomic_savez(path: Path, arrays: dict) -> None:
    _check_out(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".npz.tmp")
    except OSError as exc:
        raise ValidationError(
            f"--out directory must be writable; got {str(directory)!r} ({exc})."
        ) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def run_fit(args: argparse.Namespace) -> int:
    """Body of ``hcl-stats fit``."""
    from ..model import MultimodalData

    if args.out.suffix != ".npz":
        raise ValidationError(f"--out must end in .npz; got {str(args.out)!r}.")
    _check_out(args.out)
    for src in args.data or ():
        if Path(src).exists() and Path(src).resolve() == args.out.resolve():
            raise ValidationError(
                f"--out must not be one of the DATA files; got {str(args.out)!r}, which "
                "would overwrite the input."
            )
    h5mu_input = args.dataset is None and [Path(p).suffix for p in args.data or ()] == [".h5mu"]
    if not h5mu_input and (args.join != "exact" or args.layer is not None
                           or args.modalities is not None):
        got = (f"--dataset {args.dataset}" if args.dataset is not None
               else str([str(p) for p in args.data or ()]))
        raise ValidationError(
            f"--join, --modalities and --layer apply to an .h5mu file only; got {got}."
        )
    if args.dataset is not None:
        from ..datasets import load

        ds = load(args.dataset)
        views, names = list(ds.data.Xs), list(ds.view_names)
    elif not args.data:
        raise ValidationError("DATA files or --dataset NAME must be given; got neither.")
    else:
        h5mu = {"join": args.join, "layer": args.layer, "modalities": (
            None if args.modalities is None
            else [m.strip() for m in args.modalities.split(",")])}
        views, names = read_views(list(args.data), args.header, h5mu)
    data = MultimodalData(views, view_names=None)
    if args.preprocess != "none":
        from ..preprocessing import Preprocessor

        data = Preprocessor.fit(data, scale=args.preprocess).transform(data)
    est = _build_estimator(args)
    _scale_warning(data, names, args)
    structure, selector = args.structure, _selector(args, est)
    if structure is None and selector is not None:
        from ..estimators.learn import learn_structure

        learned_s = learn_structure(data, selector, noise_rule=est.noise_rule,
                                    options=_select_options(args), rng=args.seed)
        structure = learned_s.structure
        for change in learned_s.changes:
            print(f"{selector}: lowered {change}", file=sys.stderr)
        print(f"selected structure ({selector}): {structure}", file=sys.stderr)
    learned = args.structure is None
    result = est.fit(data, structure=structure, rng=args.seed)
    result = _with_evidence(args, data, result, est, learned, selector)
    arrays = {
        "loadings": np.asarray(result.loadings),
        "noise_var": np.asarray(result.noise_var, dtype=float),
        "dims": np.asarray(result.dims, dtype=np.int64),
        "structure": np.asarray(str(result.structure)),
        "view_names": np.asarray(names),
        "estimator": np.asarray(result.estimator),
        "n_samples": np.asarray(result.n_samples, dtype=np.int64),
    }
    if result.structured:
        for b in result.structure.blocks:
            key = "".join(chr(ord("A") + m) for m in sorted(b))
            rows = sum(result.dims[m] for m in b)
            if rows > GRAM_MAX_ROWS:  # d_S x d_S would dwarf the data of wide views
                print(f"gram_{key} not written: its block has d_S = {rows} > "
                      f"{GRAM_MAX_ROWS} rows (W^S W^S^T is in 'loadings')",
                      file=sys.stderr)
                continue
            arrays[f"gram_{key}"] = result.gram(b)
    _atomic_savez(args.out, arrays)
    summary = result.summary()
    text = {
        "text": str,
        "markdown": lambda s: s.to_markdown(),
        "latex": lambda s: s.to_latex(),
    }[args.format](summary)
    sys.stdout.write(text + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _selector(args: argparse.Namespace, est) -> str | None:
    """The learner of ``--select`` (None: a given structure or a learning estimator)."""
    from ..estimators.learn import DEFAULT_SELECTOR, SELECTORS

    select = args.select
    if select is not None and select not in SELECTORS:
        raise ValidationError(
            f"--select must be one of {', '.join(SELECTORS)}; got {select!r}."
        )
    if select is not None and args.structure is not None:
        raise ValidationError(
            f"--select must not be combined with --structure (the structure is given, "
            f"nothing is learned); got --select {select} --structure {args.structure!r}."
        )
    rule = getattr(args, "select_rule", None)
    if rule is not None and (args.structure is not None or (
            est.name != "schur_select" if est.learns_structure
            else (select or DEFAULT_SELECTOR) != "schur_select")):
        raise ValidationError(
            "--select-rule applies to the schur_select learner only (the default "
            "--select, or --estimator schur_select) when the structure is learned; got "
            f"--select-rule {rule} with "
            + (f"--structure {args.structure!r}." if args.structure is not None
               else f"--estimator {est.name}." if est.learns_structure
               else f"--select {select}."))
    if est.learns_structure:
        if select is not None:
            raise ValidationError(
                f"--select must not be combined with --estimator {est.name}, which "
                f"learns the structure itself; got --select {select}. Drop one of them."
            )
        return None
    if args.structure is not None:
        return None
    return DEFAULT_SELECTOR if select is None else select


def _select_options(args: argparse.Namespace) -> dict | None:
    """The learner's options from ``--select-rule`` (None: its defaults)."""
    rule = getattr(args, "select_rule", None)
    return None if rule is None else {"rule": rule}


def _scale_warning(data, names, args) -> None:
    """:func:`~hcl_stats.preprocessing.check_scales` on the data as fitted."""
    import warnings

    from ..exceptions import ScaleWarning
    from ..preprocessing import check_scales

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ScaleWarning)
        check_scales(data, names, advice="pass --preprocess feature")
    for w in caught:
        if issubclass(w.category, ScaleWarning):
            print(f"warning: {w.message}", file=sys.stderr)
        else:  # pragma: no cover - check_scales emits nothing else
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _add_evidence_args(p: argparse.ArgumentParser) -> None:
    from .._validation import cli_float, cli_int

    p.add_argument(
        "--evidence",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="print the block-evidence table (signal, detection edge, p-value of "
        "H0: r_S = 0, decision; hcl_stats.block_evidence); default: on iff the "
        "structure is learned",
    )
    p.add_argument("--alpha", type=cli_float(0.0, 1.0, open_low=True), default=0.05,
                   help="level of the per-block tests (default 0.05)")
    p.add_argument("--null-draws", type=cli_int(0), default=None,
                   help="parametric-bootstrap draws per null of the block test (0: no "
                   "test, signal and edge only; default 99 when d <= 300 and M <= 4, "
                   "else 0, as the test reruns the selection (1 + blocks) x draws times)")
    p.add_argument("--bootstrap", type=cli_int(0), default=0, metavar="B",
                   help="row resamples for the selection frequencies (default 0: none; "
                   "costs B structure selections, with a progress bar)")
    p.add_argument("--resample", choices=("bootstrap", "subsample"), default="bootstrap",
                   help="how --bootstrap resamples the rows: 'bootstrap' (n rows with "
                   "replacement, the learner told n/2) or 'subsample' (n/2 distinct "
                   "rows). Use 'subsample' unless d is small against n: on pure noise "
                   "with d near or above n, bootstrap resamples select spurious blocks "
                   "(docs/block_evidence.md section 4)")
    p.add_argument("--seed", type=cli_int(0, 2**63 - 1), default=0,
                   help="seed of every random draw: the fit of a randomised estimator (slide's "
                   "folds), the structure learner, the null draws and resamples (default 0)")


def _with_evidence(args, data, result, est, learned: bool, selector: str | None = None):
    """Attach the block-evidence table when asked (or the structure is learned)."""
    show = learned if args.evidence is None else args.evidence
    if not show or not result.structured:
        return result
    from ..block_evidence import (
        LEARNERS,
        attach_evidence,
        block_evidence,
        default_null_draws,
    )

    name = est.name if est.learns_structure else selector
    learner: Any = (name if name in LEARNERS
                    else "convex_fast" if name == "convex" else "schur_select")
    if learner == "schur_select" and _select_options(args):  # the rule it selected with
        from ..estimators import SchurSelect

        learner = SchurSelect(**_select_options(args))
    n_null = args.null_draws
    if n_null is None:
        n_null = default_null_draws(result.dims)
        if not n_null:
            print("block evidence: no test of r_S = 0 at this size by default (d = "
                  f"{sum(result.dims)}, M = {len(result.dims)}); pass --null-draws N",
                  file=sys.stderr)
    ev = block_evidence(data, result, alpha=args.alpha, n_null=n_null,
                        n_boot=args.bootstrap, learner=learner, rng=args.seed,
                        resample=args.resample, progress=args.bootstrap > 0)
    return attach_evidence(result, ev)


def run_check(args: argparse.Namespace) -> int:
    """Body of ``hcl-stats check-identifiable``."""
    from ..identifiability import check_identifiable

    report = check_identifiable(args.structure, _parse_dims(args.dims), noise=args.noise)
    if getattr(args, "json", False):
        import json

        sys.stdout.write(json.dumps(report.to_dict()) + "\n")
    else:
        sys.stdout.write(str(report) + "\n")
    return 0 if report.identifiable else 1
