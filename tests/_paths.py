"""Fitting on both paths (covariance and sample space) for the agreement tests."""

from __future__ import annotations

import warnings

import hcl_stats as hs


def fit_both_paths(est, data, **kwargs):
    """``[covariance fit, samples fit]``; a refusal is recorded as its exception type."""
    out = []
    for path in ("covariance", "samples"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                out.append(est.fit(data, path=path, **kwargs))
            except hs.exceptions.HCLError as exc:
                out.append(type(exc))
    return out
