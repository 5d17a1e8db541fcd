"""Deprecated: moved to :mod:`hcl_stats.study.runner` (this alias will be removed)."""

from __future__ import annotations

import warnings

from .study import runner as _moved
from .study.runner import *  # noqa: F403
from .study.runner import __all__  # noqa: F401

warnings.warn(
    "hcl_stats.runner is deprecated; import from hcl_stats.study.runner",
    DeprecationWarning,
    stacklevel=2,
)


def __getattr__(name: str):
    return getattr(_moved, name)
