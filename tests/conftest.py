"""Shared fixtures: the any-seed contract and hypothesis profiles.

Stochastic tests take the ``global_seed`` fixture and must pass for *any* seed.
``HCL_TEST_SEED`` selects the seeds: an integer (one seed), ``any`` (one seed
drawn at random and printed in the header) or ``all`` (0-99). The default is 0,
so CI is deterministic.
"""

from __future__ import annotations

import os
import secrets

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", max_examples=200, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _seeds() -> list[int]:
    value = os.environ.get("HCL_TEST_SEED", "0")
    if value == "all":
        return list(range(100))
    if value == "any":
        return [secrets.randbelow(100)]
    return [int(value)]


_SEEDS = _seeds()


def pytest_report_header(config):
    return f"HCL_TEST_SEED seeds: {_SEEDS[:5]}{'...' if len(_SEEDS) > 5 else ''}"


@pytest.fixture(params=_SEEDS)
def global_seed(request) -> int:
    """A seed in 0-99; tests using it must pass for every such seed."""
    return request.param


@pytest.fixture
def rng(global_seed) -> np.random.Generator:
    """A Generator from ``global_seed``."""
    return np.random.default_rng(global_seed)


def pytest_terminal_summary(terminalreporter):
    # ``-q`` (the README's command) hides the header; repeat the seeds at the end
    terminalreporter.write_line(pytest_report_header(terminalreporter.config))
