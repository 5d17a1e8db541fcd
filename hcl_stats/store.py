"""Deprecated: moved to :mod:`hcl_stats.study.store` (this alias will be removed)."""

from __future__ import annotations

import warnings

from .study import store as _moved
from .study.store import *  # noqa: F403
from .study.store import __all__  # noqa: F401

warnings.warn(
    "hcl_stats.store is deprecated; import from hcl_stats.study.store",
    DeprecationWarning,
    stacklevel=2,
)


def __getattr__(name: str):
    return getattr(_moved, name)
