"""Iterative solvers run with one BLAS thread, whatever the caller allows.

numpy and scipy each load their own OpenBLAS; when both run multithreaded inside a
loop of many small BLAS calls, their idle workers spin against each other (65 s of
wall time instead of 3.7 s for the default fit of the paper design on 2 cores).
``one_blas_thread`` pins both for the loop and restores the caller's setting.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

import hcl_stats as hs
from hcl_stats._linalg import SMALL_BLAS_DIM, one_blas_thread
from hcl_stats.estimators import MaskedGradient, SchurComplement, get

threadpoolctl = pytest.importorskip("threadpoolctl")


def _blas_threads() -> list[int]:
    return [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]


def test_one_blas_thread_pins_every_blas_and_restores_the_callers_limit():
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        outside = _blas_threads()
        with one_blas_thread():
            assert _blas_threads()
            assert set(_blas_threads()) == {1}
        assert _blas_threads() == outside


def test_a_worker_thread_leaves_the_process_blas_threads_alone():
    # BLAS thread counts are per process; only the main thread pins them, so a fit
    # in a worker thread can neither be overruled nor leave the process pinned
    seen: dict[str, list[int]] = {}

    def worker():
        with one_blas_thread():
            seen["inside"] = _blas_threads()

    # no limit held by the main thread: a worker's pin would take control and apply
    outside = _blas_threads()
    t = threading.Thread(target=worker)
    t.start()
    t.join(20)
    assert seen["inside"] == outside
    assert _blas_threads() == outside
    with one_blas_thread():  # and the main thread still can
        assert set(_blas_threads()) == {1}


def test_refinement_is_bit_identical_for_any_caller_thread_limit(rng):
    # At these sizes OpenBLAS splits the d x K products across threads; without the
    # pin the two fits differ in the last bits (measured: 1.8e-15). The noise level is
    # fixed so that only the refinement runs under the caller's limit.
    structure = hs.Structure.parse("AB:2 AC:1 A:1 B:2 C:1")
    model = hs.HierarchicalFactorModel.random((300, 400, 300), structure, rng=rng)
    cov = model.sample(400, rng=rng).sample_cov()
    start = SchurComplement().fit_covariance(cov, dims=model.dims, structure=structure)
    fits = {}
    for threads in (1, 2):
        with threadpoolctl.threadpool_limits(limits=threads, user_api="blas"):
            fits[threads] = MaskedGradient(noise_rule=start.noise_var, tol=1e-10, max_iter=300).fit_covariance(
                cov, dims=model.dims, structure=structure, init=start
            )
    np.testing.assert_array_equal(fits[1].loadings, fits[2].loadings)
    assert fits[1].diagnostics.n_iter == fits[2].diagnostics.n_iter



@pytest.mark.parametrize("name", ["naive", "schur", "pca_shrink", "schur_shrink"])
def test_a_fit_below_small_blas_dim_is_bit_identical_for_any_caller_thread_limit(rng, name):
    # d = 900 < SMALL_BLAS_DIM: the whole fit runs with one BLAS thread (without the
    # pin naive, schur and pca_shrink differ by 4e-16 - 3e-15 between 1 and 2 threads)
    structure = hs.Structure.parse("AB:2 AC:1 A:1 B:2 C:1")
    model = hs.HierarchicalFactorModel.random((200, 300, 400), structure, rng=rng)
    cov = model.sample(500, rng=rng).sample_cov()
    assert cov.shape[0] < SMALL_BLAS_DIM
    fits = {}
    for threads in (1, 2):
        with threadpoolctl.threadpool_limits(limits=threads, user_api="blas"), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")  # blocks below the edge are dropped
            fits[threads] = get(name)().fit_covariance(
                cov, dims=model.dims, structure=structure, n_samples=500
            )
    np.testing.assert_array_equal(fits[1].loadings, fits[2].loadings)
