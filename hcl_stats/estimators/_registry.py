"""The estimator registry: registry name -> estimator class (private module).

Filled by :mod:`hcl_stats.estimators` (its ``__init__`` registers every
built-in estimator explicitly) and by users through :func:`register`. Modules
inside :mod:`hcl_stats.estimators` that look an estimator up by name import
:func:`get` from here, not from the package, so no import runs back up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..exceptions import ValidationError

if TYPE_CHECKING:
    from ._base import Estimator

__all__ = ["DEFAULT", "ESTIMATORS", "available", "get", "register", "sample_path_estimators"]

#: Registry name -> class.
ESTIMATORS: dict[str, type[Estimator]] = {}

#: The most accurate estimator with a known structure; the CLI default. Measured on
#: the paper configuration (reports/shrinkage_paper/, 20 replications): lowest
#: overall and per-structure Gram error at n = 5000 and 30000, and within 0.3% of
#: the unshrunk refinement at high SNR.
DEFAULT = "masked_shrink"


def register(cls: type[Estimator]) -> type[Estimator]:
    """Add an estimator class to the registry under ``cls.name`` (a decorator).

    Parameters
    ----------
    cls : type
        A subclass of :class:`~hcl_stats.estimators.Estimator` with a ``name``.

    Returns
    -------
    type
        ``cls`` itself.

    Examples
    --------
    >>> from hcl_stats import estimators
    >>> estimators.register(estimators.NaivePCA) is estimators.NaivePCA
    True
    """
    ESTIMATORS[cls.name] = cls
    return cls


def available() -> tuple[str, ...]:
    """Registry names of all estimators, sorted.

    Examples
    --------
    >>> from hcl_stats import estimators
    >>> "schur" in estimators.available()
    True
    """
    return tuple(sorted(ESTIMATORS))


def sample_path_estimators() -> tuple[str, ...]:
    """Registry names of the estimators with a sample-space path, sorted.

    These fit wide views (``d_m > n``) and ``scipy.sparse`` views without forming
    the ``d x d`` covariance (``Estimator.fit(..., path=...)``; ``path='auto'``
    does so where the reduction leaves at most 85% of ``d``). The others need
    the covariance.

    Examples
    --------
    >>> from hcl_stats import estimators
    >>> {"masked_shrink", "masked_gradient", "schur", "naive"} <= set(
    ...     estimators.sample_path_estimators())
    True
    """
    return tuple(sorted(k for k, c in ESTIMATORS.items() if c.samples_path))


def get(name: str) -> type[Estimator]:
    """Estimator class registered as ``name``.

    Parameters
    ----------
    name : str

    Returns
    -------
    type

    Raises
    ------
    ValidationError
        If no estimator has that name; the message lists the available ones.

    Examples
    --------
    >>> from hcl_stats import estimators
    >>> estimators.get("missing_views").__name__
    'MissingViews'
    """
    try:
        return ESTIMATORS[name]
    except (KeyError, TypeError):
        raise ValidationError(
            f"estimator must be one of {', '.join(available())}; got {name!r}."
        ) from None
