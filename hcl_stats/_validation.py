"""Validation helpers used at the public boundary (private module).

Every helper raises :class:`~hcl_stats.exceptions.ValidationError` with a message
that names the argument, the offending value and the rule.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import math
import numbers
import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .exceptions import ValidationError

__all__: list[str] = []


#: The package's directory with a trailing separator (so that a sibling such as
#: ``hcl_stats_examples/`` is not mistaken for it).
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def outside_stacklevel() -> int:
    """``stacklevel`` that makes the caller's ``warnings.warn`` name the user's code.

    Counts the frames above the caller that belong to the hcl_stats package, so
    the warning points at the first frame outside it (the user's call of
    ``fit``), however deep inside the package it was raised.
    """
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    return level


def short_repr(value: Any) -> str:
    """Return a short repr of ``value`` for error messages."""
    text = " ".join(repr(value).split())  # one line, e.g. for arrays
    return text if len(text) <= 80 else text[:77] + "..."


_short = short_repr  # the old private name, for code written against it


def check_bool(value: Any, name: str) -> bool:
    """Return ``value`` as a bool; only ``True``, ``False`` and numpy bools pass."""
    if not isinstance(value, bool | np.bool_):
        raise ValidationError(f"{name} must be True or False; got {short_repr(value)}.")
    return bool(value)


def check_int(value: Any, name: str, *, minimum: int | None = None) -> int:
    """Return ``value`` as an int, checking type and lower bound."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValidationError(f"{name} must be an integer; got {short_repr(value)}.")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValidationError(f"{name} must be >= {minimum}; got {value}.")
    return value


def check_real(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a finite float in ``[low, high]`` (open ends if asked)."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "fiu":
        value = value.item()  # a 0-d numeric array is a scalar
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValidationError(f"{name} must be a real number; got {short_repr(value)}.")
    value = float(value)
    if not np.isfinite(value):
        raise ValidationError(f"{name} must be finite; got {value!r}.")
    if low is not None and (value <= low if low_open else value < low):
        op = ">" if low_open else ">="
        raise ValidationError(f"{name} must be {op} {low}; got {value!r}.")
    if high is not None and (value >= high if high_open else value > high):
        op = "<" if high_open else "<="
        raise ValidationError(f"{name} must be {op} {high}; got {value!r}.")
    return value


def check_real_array(
    value: Any, name: str, *, low: float | None = None, low_open: bool = False
) -> NDArray[np.float64]:
    """Return a real scalar or array (e.g. sample sizes) as finite float64, checked against ``low``.

    The result has the shape of ``value`` (0-d for a scalar). Booleans, strings,
    complex numbers, empty arrays and values that overflow float64 raise
    :class:`ValidationError` naming ``name``, the value and the rule.

    Examples
    --------
    >>> check_real_array([100, 200], "n", low=2).tolist()
    [100.0, 200.0]
    """
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        arr = np.asarray(None)
    if arr.dtype.kind not in "fiu" or arr.size == 0:
        raise ValidationError(
            f"{name} must be a real number or a non-empty array of real numbers; got "
            f"{short_repr(value)}."
        )
    with np.errstate(over="ignore"):
        out = arr.astype(np.float64)
    if not np.all(np.isfinite(out)):
        bad = out.flat[int(np.argmin(np.isfinite(out)))]
        raise ValidationError(f"{name} must be finite; got {short_repr(value)} ({bad!r}).")
    if low is not None:
        lowest = float(np.min(out))
        if lowest <= low if low_open else lowest < low:
            op = ">" if low_open else ">="
            raise ValidationError(f"{name} must be {op} {low}; got {lowest!r}.")
    return out


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """Check that ``value`` is one of the strings in ``choices``."""
    if not isinstance(value, str) or value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValidationError(f"{name} must be one of {allowed}; got {short_repr(value)}.")
    return value


def check_options(
    options: Any, name: str, func: Callable[..., Any], *, taken: Sequence[str] = ()
) -> dict[str, Any]:
    """Return ``options`` as a dict of keyword arguments that ``func`` accepts.

    ``None`` means no options. Names in ``taken`` are set by the caller and
    refused. A non-mapping, a non-string key or a name that ``func`` does not take
    raises :class:`ValidationError` listing the names it does take.

    Examples
    --------
    >>> check_options({"ddof": 1}, "options", np.var)
    {'ddof': 1}
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ValidationError(
            f"{name} must be a dict of keyword arguments of {func.__name__}; got "
            f"{short_repr(options)}."
        )
    if dataclasses.is_dataclass(func):  # an estimator class: its init fields
        names = [f.name for f in dataclasses.fields(func) if f.init]
    else:
        names = [k for k, p in inspect.signature(func).parameters.items()
                 if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    allowed = sorted(k for k in names if k not in taken)
    for key in options:
        if key not in allowed:
            raise ValidationError(
                f"{name} must contain only keyword arguments of {func.__name__} "
                f"({', '.join(allowed)}); got {short_repr(key)}."
            )
    return dict(options)


def check_dims(dims: Any, name: str = "dims") -> tuple[int, ...]:
    """Return per-view dimensions ``(d_1, ..., d_M)`` as a tuple of positive ints."""
    if isinstance(dims, (str, bytes)) or not isinstance(dims, Sequence | np.ndarray):
        raise ValidationError(
            f"{name} must be a sequence of positive integers; got {short_repr(dims)}."
        )
    out = []
    for i, d in enumerate(dims):
        if isinstance(d, bool) or not isinstance(d, numbers.Integral):
            raise ValidationError(
                f"{name}[{i}] must be a positive integer; got {short_repr(d)}."
            )
        if int(d) < 1:
            raise ValidationError(f"{name}[{i}] must be a positive integer; got {d}.")
        out.append(int(d))
    if not out:
        raise ValidationError(f"{name} must contain at least one view; got {dims!r}.")
    return tuple(out)


def check_float_array(
    array: ArrayLike, name: str, *, ndim: int | None = None
) -> NDArray[np.float64]:
    """Return a finite float64 copy of ``array``; reject non-real or non-numeric dtypes.

    A read-only float64 ``numpy.memmap`` (mode ``'r'``) is validated and returned
    as is: nothing can write through it, so a copy would only cost time and
    memory (the file itself must not be rewritten while it is in use).

    Floating-point dtypes (float16 to longdouble) and integer dtypes are accepted
    and cast to float64. Integers are accepted because counts are common data and
    the cast is exact up to ``2**53``; larger integers, which the cast would round,
    raise. Boolean, complex, string and object arrays, ragged nested lists and
    values that overflow float64 raise :class:`ValidationError`.
    """
    try:
        arr = np.asarray(array)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"{name} must be a rectangular numeric array; got {type(array).__name__} "
            f"that numpy cannot convert ({exc})."
        ) from None
    kind = arr.dtype.kind
    if kind == "c":
        raise ValidationError(
            f"{name} must be real-valued; got complex dtype {arr.dtype}."
        )
    if kind not in "fiu":
        raise ValidationError(
            f"{name} must have a floating-point or integer dtype; got dtype "
            f"{arr.dtype}."
        )
    if ndim is not None and arr.ndim != ndim:
        raise ValidationError(
            f"{name} must be {ndim}-dimensional; got an array of shape {arr.shape}."
        )
    if kind in "iu" and arr.size:
        big = beyond_2_53(arr)
        if np.any(big):
            where = tuple(int(i) for i in np.argwhere(big)[0])
            raise ValidationError(
                f"{name} must have integer entries of magnitude <= 2**53 (exactly "
                f"representable in float64); got {int(arr[where])} at index {where}."
            )
    # A NaN or an infinity makes the sum non-finite, so a finite sum (one pass, no
    # temporary) proves every entry finite; only a non-finite sum (possibly an
    # overflow of finite values) needs the entry-wise test.
    if kind == "f" and not _sum_is_finite(arr) and not np.all(np.isfinite(arr)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise ValidationError(
            f"{name} must contain only finite values; got {float(arr[bad])!r} at "
            f"index {bad}."
        )
    if (isinstance(array, np.memmap) and getattr(array, "mode", None) == "r"
            and array.dtype == np.float64):
        # nothing can write through a read-only float64 memory map: no copy needed
        # (``hcl-stats fit`` maps .npz members; np.load(..., mmap_mode='r') too)
        return array
    with np.errstate(over="ignore"):
        out = np.array(arr, dtype=np.float64)
    # finite floats of at most 64 bits and integers below 2**53 cast exactly to
    # finite float64 values; only wider floats (longdouble) can overflow
    if (kind == "f" and arr.dtype.itemsize > 8) and not np.all(np.isfinite(out)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(out))[0])
        raise ValidationError(
            f"{name} must contain values representable in float64; got {arr[bad]!r} "
            f"at index {bad}, which overflows."
        )
    return out


def beyond_2_53(arr: np.ndarray) -> NDArray[np.bool_]:
    """Entries of an integer array that float64 cannot hold exactly (``|x| > 2^53``).

    Compares on both sides: ``abs()`` of the smallest int64 overflows.
    """
    return (arr > 2**53) | (arr < -(2**53)) if arr.dtype.kind == "i" else arr > 2**53


def _sum_is_finite(arr: np.ndarray) -> bool:
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.sum(arr, dtype=np.float64 if arr.dtype.itemsize <= 8
                                       else arr.dtype)))


#: Views whose largest entry is below this are refused: their variances (about
#: 1e-304 and less) and the noise variance sigma^2 would leave the normal float64
#: range, where products lose precision or vanish (data at 1e-160 gave block Grams
#: wrong by 5e-4 with no warning; at 1e-170 a covariance of zeros).
MIN_VIEW_ENTRY = 1e-152


def check_view_floor(largest: float, name: str) -> None:
    """Refuse a view whose largest entry is in ``(0, MIN_VIEW_ENTRY)``.

    Examples
    --------
    >>> check_view_floor(1e-3, "views[0]")
    >>> try:
    ...     check_view_floor(1e-170, "views[0]")
    ... except ValidationError as err:
    ...     print(str(err)[:44])
    views[0] must have a largest entry >= 1e-152
    """
    if 0.0 < largest < MIN_VIEW_ENTRY:
        raise ValidationError(
            f"{name} must have a largest entry >= {MIN_VIEW_ENTRY:.0e} in magnitude, so "
            f"that its variances and the noise variance are normal float64 numbers; "
            f"got {largest:.3g}. Rescale the view so that its entries are of order "
            "1; the loadings scale with it and sigma^2 with its square."
        )


def check_views(views: Any, name: str = "views") -> tuple[NDArray[np.float64], ...]:
    """Validate a sequence of ``(n_samples, d_m)`` arrays; return float64 copies."""
    if isinstance(views, np.ndarray) or not isinstance(views, Sequence):
        raise ValidationError(
            f"{name} must be a list of 2-D arrays, one per view; got "
            f"{type(views).__name__}. For one stacked array use "
            "MultimodalData.from_stacked(X, dims)."
        )
    if len(views) == 0:
        raise ValidationError(f"{name} must contain at least one view; got 0.")
    for i, x in enumerate(views):
        if hasattr(x, "tocsr"):  # scipy.sparse: only Estimator.fit takes it
            raise ValidationError(
                f"{name}[{i}] must be a dense array here; got a scipy.sparse matrix. "
                "Pass the list of views to Estimator.fit directly (sparse views are "
                "centred implicitly on the sample-space path), or densify it."
            )
    out = tuple(
        check_float_array(x, f"{name}[{i}]", ndim=2) for i, x in enumerate(views)
    )
    n0 = out[0].shape[0]
    for i, x in enumerate(out):
        if x.shape[1] == 0:
            raise ValidationError(
                f"{name}[{i}] must have at least one column (d_{i + 1} >= 1); got "
                f"shape {x.shape}."
            )
        if x.shape[0] != n0:
            raise ValidationError(
                f"{name}[{i}] has {x.shape[0]} rows but {name}[0] has {n0}; all "
                "views must have the same number of samples."
            )
    if n0 < 2:
        raise ValidationError(
            f"n_samples must be >= 2 to estimate a covariance; got {n0}."
        )
    return out


def check_covariance(
    cov: ArrayLike, name: str = "cov", *, dim: int | None = None
) -> NDArray[np.float64]:
    """Validate a symmetric positive semi-definite matrix; return a float64 copy.

    Asymmetry beyond ``1e-8`` (relative) and negative eigenvalues beyond ``1e-8``
    times the largest eigenvalue raise; smaller violations are symmetrised away.
    """
    arr = check_float_array(cov, name, ndim=2)
    if arr.shape[0] != arr.shape[1]:
        raise ValidationError(f"{name} must be square; got shape {arr.shape}.")
    if dim is not None and arr.shape[0] != dim:
        raise ValidationError(
            f"{name} must have shape ({dim}, {dim}) to match sum(dims) = {dim}; got "
            f"shape {arr.shape}."
        )
    scale = float(np.max(np.abs(arr))) if arr.size else 0.0
    limit = float(np.sqrt(np.finfo(np.float64).max)) / (4.0 * max(arr.shape[0], 1))
    if scale >= limit:
        raise ValidationError(
            f"{name} must have entries of magnitude < {limit:.3g} (so that products "
            f"of its entries fit in float64); got {scale:.3g}. Rescale the data."
        )
    asym = float(np.max(np.abs(arr - arr.T))) if arr.size else 0.0
    if asym > 1e-8 * max(scale, np.finfo(float).tiny):
        raise ValidationError(
            f"{name} must be symmetric; got max |{name} - {name}.T| = {asym:.3g} "
            f"(relative {asym / scale:.3g})."
        )
    arr = (arr + arr.T) / 2.0
    if scale == 0.0:
        raise ValidationError(f"{name} must not be the zero matrix.")
    lam_min = float(np.linalg.eigvalsh(arr)[0])
    if lam_min < -1e-8 * scale:
        raise ValidationError(
            f"{name} must be positive semi-definite; got smallest eigenvalue "
            f"{lam_min:.3g}."
        )
    return arr


def as_generator(rng: Any) -> np.random.Generator:
    """Normalise an ``rng`` argument with :func:`numpy.random.default_rng`."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, np.random.RandomState):
        raise ValidationError(
            "rng must be None, an int, a SeedSequence or a numpy Generator; got a "
            "legacy RandomState (use np.random.default_rng instead)."
        )
    try:
        return np.random.default_rng(rng)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"rng must be None, an int, a sequence of ints, a SeedSequence or a "
            f"numpy Generator; got {short_repr(rng)}."
        ) from exc


def memory_limit_bytes() -> int:
    """Physical memory of this machine in bytes (``2**40`` if it cannot be read).

    Used as the ceiling of :func:`check_memory`: an allocation larger than the
    machine's RAM cannot succeed and would only swap or be killed.
    """
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):  # pragma: no cover - non-POSIX
        return 2**40


def _human_bytes(nbytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if nbytes < 1000 or unit == "PB":
            return f"{nbytes:.3g} {unit}"
        nbytes /= 1000.0
    return f"{nbytes:.3g} EB"  # pragma: no cover


def check_memory(nbytes: int, what: str, *, fix: str = "") -> None:
    """Raise :class:`ValidationError` if ``what`` needs more bytes than the RAM.

    Parameters
    ----------
    nbytes : int
        Estimated peak bytes of the arrays that ``what`` would allocate.
    what : str
        Description of the computation and the sizes that drive it.
    fix : str, optional
        Sentence appended to the message (how to make the request smaller).
    """
    limit = memory_limit_bytes()
    if nbytes > limit:
        raise ValidationError(
            f"{what} must fit in memory; it would need about {_human_bytes(nbytes)} "
            f"but this machine has {_human_bytes(limit)}.{' ' + fix if fix else ''}"
        )


#: Largest integer a CLI option accepts by default (SQLite and numpy seeds are int64).
CLI_INT_MAX = 2**31 - 1


def cli_int(minimum: int, maximum: int = CLI_INT_MAX) -> Callable[[str], int]:
    """Return an argparse ``type`` that parses an integer in ``[minimum, maximum]``.

    Out-of-range or non-integer text raises :class:`argparse.ArgumentTypeError`,
    which argparse turns into its usage error (exit code 2).

    Examples
    --------
    >>> cli_int(0)("3")
    3
    """

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be an integer in {minimum}..{maximum}; got {text!r}"
            ) from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(
                f"must be an integer in {minimum}..{maximum}; got {value}"
            )
        return value

    parse.__name__ = f"int >= {minimum}"
    return parse


#: argparse type of a count that may be zero.
non_negative_int = cli_int(0)
#: argparse type of a count that must be at least one.
positive_int = cli_int(1)


def cli_float(
    minimum: float, maximum: float = math.inf, *, open_low: bool = False
) -> Callable[[str], float]:
    """Return an argparse ``type`` that parses a finite float in a range.

    The range is ``[minimum, maximum]``, or ``(minimum, maximum]`` if ``open_low``.

    Examples
    --------
    >>> cli_float(0.0, open_low=True)("1.5")
    1.5
    """
    rule = f"{'>' if open_low else '>='} {minimum:g}"
    if math.isfinite(maximum):
        rule += f" and <= {maximum:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        ok = math.isfinite(value) and (value > minimum if open_low else value >= minimum)
        if not ok or value > maximum:
            raise argparse.ArgumentTypeError(
                f"must be a finite number {rule}; got {text!r}"
            )
        return value

    parse.__name__ = "float"
    return parse


#: argparse type of a positive duration or size.
positive_float = cli_float(0.0, open_low=True)


def warn_renamed(
    old_name: str, new_name: str, *, stacklevel: int = 3, category: type[Warning] = DeprecationWarning
) -> None:
    """Warn that ``old_name`` is an older spelling of ``new_name`` (DeprecationWarning).

    ``category=FutureWarning`` is for end users (e.g. study TOML keys): Python shows it
    by default.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_renamed("n_modalities", "n_views")
    >>> caught[0].category.__name__, str(caught[0].message)
    ('DeprecationWarning', 'n_modalities is deprecated; use n_views.')
    """
    warnings.warn(f"{old_name} is deprecated; use {new_name}.", category, stacklevel=stacklevel)


def keyword_alias(new: Any, new_name: str, old: Any, old_name: str) -> Any:
    """The value of a keyword given under its name or its deprecated older spelling.

    The older spelling still works but emits a DeprecationWarning.

    Examples
    --------
    >>> keyword_alias(2, "n_views", None, "n_modalities")
    2
    >>> keyword_alias(2, "n_views", 3, "n_modalities")
    Traceback (most recent call last):
    ...
    hcl_stats.exceptions.ValidationError: give n_views or its older spelling n_modalities, not both; got n_views=2 and n_modalities=3.
    """
    if old is None:
        return new
    if new is not None:
        raise ValidationError(
            f"give {new_name} or its older spelling {old_name}, not both; got "
            f"{new_name}={short_repr(new)} and {old_name}={short_repr(old)}."
        )
    warn_renamed(old_name, new_name, stacklevel=4)
    return old
