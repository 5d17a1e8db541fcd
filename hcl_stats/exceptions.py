"""Exceptions and warnings raised by :mod:`hcl_stats`.

Every error subclasses :class:`HCLError` *and* the builtin it refines, so callers
may catch either ``hcl_stats.exceptions.ValidationError`` or plain ``ValueError``.

Messages follow one format: ``"<name> must be <constraint>; got <value!r>."``,
followed by the context that makes the message actionable.
"""

from __future__ import annotations

__all__ = [
    "BlockDroppedWarning",
    "ConvergenceWarning",
    "CostWarning",
    "HCLError",
    "NoStructureError",
    "NotIdentifiableError",
    "NumericalWarning",
    "ScaleWarning",
    "SolverError",
    "StoreAccessError",
    "StoreCorruptedError",
    "StoreVersionMismatch",
    "StudyConfigError",
    "ValidationError",
]


class HCLError(Exception):
    """Base class for all hcl_stats errors."""


class ValidationError(HCLError, ValueError):
    """Bad argument value, shape or type."""


class NotIdentifiableError(HCLError, ValueError):
    """Structure, ranks or dims violate a condition the estimator needs."""


class NoStructureError(NotIdentifiableError, ValidationError):
    """A structure learner found no block above its detection edge.

    The message starts with "the data support no shared structure". It subclasses
    both errors that learners raised before it existed
    (:class:`NotIdentifiableError` from the Schur and convex learners,
    :class:`ValidationError` from rank counting).
    """


class SolverError(HCLError, RuntimeError):
    """A numerical solver failed; ``status`` holds the solver's status string."""

    def __init__(self, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.status = status


class StudyConfigError(HCLError, ValueError):
    """Invalid study file; the message names the file and the key path."""


class StoreVersionMismatch(HCLError, RuntimeError):
    """Appending results produced by different code to an existing store."""


class StoreCorruptedError(HCLError, RuntimeError):
    """A result store is unreadable, truncated or inconsistent."""


class StoreAccessError(HCLError, OSError):
    """A result store cannot be opened, read or written for a cause outside it.

    E.g. a directory in its place, a read-only file system or a full disk.
    """


class ConvergenceWarning(UserWarning):
    """An iterative estimator stopped at ``max_iter`` before its tolerance."""


class NumericalWarning(RuntimeWarning):
    """A numerical issue was repaired, e.g. negative eigenvalues were clipped."""


class BlockDroppedWarning(UserWarning):
    """A requested block was estimated as exactly zero.

    Raised by the shrinkage estimators when every spike of a block is at or below
    its detectability edge: the block is in the structure but the data carry no
    detectable signal for it at this ``n``. ``FitResult.summary()`` marks it.
    """


class CostWarning(UserWarning):
    """A fit of wide data will form the ``d x d`` covariance.

    Raised when an estimator without a sample-space path is given views on which
    ``path='auto'`` would take the sample path (some ``d_m > n`` and
    ``sum_m min(d_m, n - 1) <= 0.85 d``) and ``d >= 4000``: it needs ``8 d^2``
    bytes and ``O(d^3)`` eigendecompositions where the sample-space estimators
    (:func:`hcl_stats.estimators.sample_path_estimators`) need ``O(n d)``.
    """


class ScaleWarning(UserWarning):
    """Columns or views whose standard deviations differ by more than ``1e4``.

    The model's noise is isotropic (one ``sigma^2``) or per view, so columns on
    very different scales put every high-variance column into the signal and
    the small ones into the noise. Raised by
    :func:`hcl_stats.preprocessing.check_scales`; the remedies are
    ``hcl-stats fit --preprocess feature`` (or ``view``), or
    ``noise_rule='per_view'`` when only the views differ.
    """
