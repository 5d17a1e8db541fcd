"""Common checks for estimators: ``check_estimator`` and population recovery."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..exceptions import HCLError, NotIdentifiableError, ValidationError
from ..model import HierarchicalFactorModel
from ..structure import Structure
from ._models import random_model

__all__ = ["CheckResult", "assert_population_recovery", "check_estimator"]

#: Designs on which ``check_estimator`` tests population exactness: the Schur
#: route (two sizes), designs without it, and ``d <= K`` with per-view ranks.
DEFAULT_DESIGNS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("ABC:2 AB:1 C:1", (5, 6, 4)),
    ("AB:1 A:1 B:1", (4, 4)),
    ("AB:2 B:2 A:1 C:1", (10, 3, 10)),
    ("AB:1 A:1 B:1", (3, 1)),
    ("ABC:1 AB:1 BC:1 A:1", (3, 2, 2)),
)


def assert_population_recovery(
    estimator: Any,
    model: HierarchicalFactorModel,
    *,
    rtol: float = 1e-8,
    noise_rtol: float | None = None,
    rng: Any = 0,
):
    """Fit ``model.covariance()`` and assert every block Gram is recovered.

    Parameters
    ----------
    estimator : Estimator
    model : HierarchicalFactorModel
    rtol : float, default=1e-8
        Largest allowed relative Frobenius error of every full block Gram
        ``W^S W^S^T`` (cross-view blocks included).
    noise_rtol : float, optional
        Also compare the noise variance(s) at this relative tolerance.
    rng : None, int, SeedSequence or Generator, default=0
        Passed to ``fit_covariance``.

    Returns
    -------
    FitResult

    Raises
    ------
    AssertionError
        Listing the blocks whose relative error exceeds ``rtol``.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> m = hs.HierarchicalFactorModel.random((4, 5), "AB:1 A:1 B:1", rng=0)
    >>> fit = assert_population_recovery(hs.estimators.SchurComplement(), m)
    """
    from ..metrics import structure_gram_errors
    from ..structure import format_block

    fit = estimator.fit_covariance(
        model.covariance(), dims=model.dims, structure=model.structure, rng=rng
    )
    errs = structure_gram_errors(fit, model, relative=True)
    bad = {b: e for b, e in errs.items() if not e <= rtol}
    if bad:
        raise AssertionError(
            f"{type(estimator).__name__} does not recover the population block Grams "
            f"of {model.structure} with dims {model.dims}: relative errors "
            + ", ".join(f"{format_block(b)}: {e:.2e}" for b, e in bad.items())
            + f" > rtol = {rtol:.1e}"
        )
    if noise_rtol is not None:
        np.testing.assert_allclose(
            np.broadcast_to(np.asarray(fit.noise_var, dtype=float), (model.n_views,)),
            np.broadcast_to(np.asarray(model.noise_var, dtype=float), (model.n_views,)),
            rtol=noise_rtol, err_msg="noise variance not recovered",
        )
    return fit


@dataclass(frozen=True)
class CheckResult:
    """Outcome of :func:`check_estimator`.

    Attributes
    ----------
    estimator : str
        ``repr`` of the checked estimator.
    outcomes : dict
        ``check name -> 'passed' | 'exempt: <reason>' | 'FAILED: <message>'``.
    """

    estimator: str
    outcomes: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> dict[str, str]:
        """The checks that failed."""
        return {k: v for k, v in self.outcomes.items() if v.startswith("FAILED")}

    @property
    def passed(self) -> tuple[str, ...]:
        """Names of the checks that passed."""
        return tuple(k for k, v in self.outcomes.items() if v == "passed")

    @property
    def exempt(self) -> dict[str, str]:
        """Checks skipped with a declared reason."""
        return {k: v[len("exempt: "):] for k, v in self.outcomes.items()
                if v.startswith("exempt")}


CHECKS = (
    "frozen_hyperparameters",
    "typed_errors",
    "inputs_unmodified",
    "determinism",
    "population_exact",
    "block_rotation_invariance",
    "view_rotation_equivariance",
    "view_rescaling_equivariance",
)


def check_estimator(
    estimator: Any,
    *,
    designs: Sequence[tuple[Any, Sequence[int]]] | None = None,
    exempt: dict[str, str] | None = None,
    rtol: float = 1e-8,
    rng: Any = 0,
    raise_on_failure: bool = True,
) -> CheckResult:
    """Run the common checks on an estimator built on the package's base class.

    Checks (each ``'passed'``, ``'exempt: reason'`` or ``'FAILED: ...'``):

    ``frozen_hyperparameters``
        Setting an attribute raises; ``get_params()`` and equality are unchanged
        by a fit.
    ``typed_errors``
        Non-finite, non-symmetric or wrongly sized covariances, wrong dims and a
        structure for the wrong number of views raise :class:`ValidationError`.
    ``inputs_unmodified``
        ``fit_covariance`` (and ``fit`` on data) leave their inputs bit-identical.
    ``determinism``
        Two fits with the same ``rng`` give identical loadings.
    ``population_exact``
        On every design of ``designs`` for which
        :func:`hcl_stats.check_identifiable` names this estimator in
        ``exact_estimators``, the population fit recovers every block Gram to
        ``rtol`` (:func:`assert_population_recovery`). Exempt if it is named for
        none.
    ``block_rotation_invariance``
        Replacing ``W^S`` by ``W^S Q_S`` (which leaves ``Sigma`` unchanged up to
        round-off) leaves the estimated block Grams unchanged.
    ``view_rotation_equivariance``
        Rotating each view by an orthogonal ``U_m`` maps every estimated block
        Gram ``G`` to ``U G U^T``.
    ``view_rescaling_equivariance``
        Scaling all views by ``c`` scales every block Gram by ``c^2`` (and, for
        estimators with ``noise_rule='per_view'`` support, scaling view ``m`` by
        ``c_m`` scales the rows of view ``m`` accordingly).

    Parameters
    ----------
    estimator : Estimator
    designs : sequence of (structure, dims), optional
        Designs for the population checks; default: a small fixed set including
        designs without the Schur route.
    exempt : dict, optional
        ``check name -> reason`` to skip, e.g. for an estimator that is
        randomised by design.
    rtol : float, default=1e-8
        Relative tolerance of the exactness checks; the equivariance checks use
        ``1e-6`` relative (they compare two fits, each exact only when the
        estimator is).
    rng : default=0
        Seed of the random models.
    raise_on_failure : bool, default=True
        Raise an ``AssertionError`` listing the failed checks.

    Returns
    -------
    CheckResult

    Examples
    --------
    >>> import hcl_stats as hs
    >>> res = check_estimator(hs.estimators.SchurComplement())
    >>> res.failed
    {}
    """
    from ..estimators import Estimator

    if not isinstance(estimator, Estimator):
        raise ValidationError(
            "estimator must be an instance of hcl_stats.estimators.Estimator; got "
            f"{type(estimator).__name__}."
        )
    exempt = dict(exempt or {})
    designs = tuple(designs) if designs is not None else DEFAULT_DESIGNS
    gen = np.random.default_rng(rng)
    outcomes: dict[str, str] = {}
    ctx = _Context(estimator, designs, rtol, gen)
    for name in CHECKS:
        if name in exempt:
            outcomes[name] = f"exempt: {exempt[name]}"
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                note = getattr(ctx, name)()
            outcomes[name] = f"exempt: {note}" if note else "passed"
        except AssertionError as exc:
            outcomes[name] = f"FAILED: {exc}"
        except Exception as exc:  # noqa: BLE001 - any crash is a failed check
            outcomes[name] = f"FAILED: {type(exc).__name__}: {exc}"
    result = CheckResult(repr(estimator), outcomes)
    if raise_on_failure and result.failed:
        raise AssertionError(
            f"check_estimator({result.estimator}) failed: "
            + "; ".join(f"{k}: {v}" for k, v in result.failed.items())
        )
    return result


class _Context:
    """The individual checks (methods return None or an exemption reason)."""

    def __init__(self, est, designs, rtol, gen):
        self.est, self.designs, self.rtol, self.gen = est, designs, rtol, gen
        self.model = HierarchicalFactorModel.random((5, 6, 4), "ABC:2 AB:1 C:1",
                                                     rng=self.gen)
        self.kw = {"dims": self.model.dims, "structure": self.model.structure}

    def _structure_arg(self):
        return self.kw["structure"]

    def _fit_cov(self, cov, est=None, dims=None, structure=None, rng=0):
        est = est or self.est
        if est.needs_data:
            raise _NeedsData
        kw = {"dims": dims or self.kw["dims"]}
        if not est.learns_structure or structure is not None:
            kw["structure"] = structure or self.kw["structure"]
        else:
            kw["structure"] = self.kw["structure"]
        return est.fit_covariance(cov, rng=rng, **kw)

    # ---------------------------------------------------------------- checks
    def frozen_hyperparameters(self):
        est = self.est
        params = est.get_params()
        f = dataclasses.fields(est)
        assert f, "estimator has no dataclass fields"
        try:
            setattr(est, f[0].name, getattr(est, f[0].name))
        except dataclasses.FrozenInstanceError:
            pass
        else:
            raise AssertionError("setting a hyper-parameter did not raise")
        clone = dataclasses.replace(est)
        self._safe_fit()
        assert est.get_params() == params, "get_params() changed after fit"
        assert est == clone, "estimator changed after fit"

    def _safe_fit(self):
        try:
            return self._fit_cov(self.model.covariance())
        except _NeedsData:
            return self.est.fit(self.model.sample(200, rng=self.gen).Xs, structure=self._structure_arg())
        except HCLError:
            return None

    def typed_errors(self):
        if self.est.needs_data:
            views = self.model.sample(50, rng=self.gen).Xs
            bad = [np.array(v) for v in views]
            bad[0][0, 0] = np.nan
            _expect(lambda: self.est.fit(bad, structure=self._structure_arg()), "NaN in a view")
            _expect(lambda: self.est.fit(views, structure=Structure.parse("AB:1")),
                    "structure for the wrong number of views")
            return None
        cov = self.model.covariance()
        nan = cov.copy()
        nan[0, 0] = np.nan
        asym = cov.copy()
        asym[0, 1] += 1.0
        _expect(lambda: self._fit_cov(nan), "a NaN in the covariance")
        _expect(lambda: self._fit_cov(asym), "a non-symmetric covariance")
        _expect(lambda: self._fit_cov(cov[:-1, :-1]), "a covariance of the wrong size")
        _expect(lambda: self._fit_cov(cov, dims=(5, 6, 0)), "a zero dimension")
        _expect(lambda: self.est.fit_covariance(cov, dims=self.kw["dims"],
                                                structure=Structure.parse("AB:1")),
                "a structure for the wrong number of views")
        return None

    def inputs_unmodified(self):
        cov = self.model.covariance()
        cov.setflags(write=True)
        before = cov.copy()
        views = [np.array(v) for v in self.model.sample(100, rng=self.gen).Xs]
        views_before = [v.copy() for v in views]
        try:
            self._fit_cov(cov)
        except _NeedsData:
            pass
        except HCLError:
            pass
        assert np.array_equal(cov, before), "fit_covariance modified its input"
        try:
            self.est.fit(views, structure=self._structure_arg())
        except HCLError:
            pass
        for v, b in zip(views, views_before, strict=True):
            assert np.array_equal(v, b), "fit modified a view"

    def determinism(self):
        if self.est.needs_data:
            views = self.model.sample(200, rng=self.gen).Xs
            a = self.est.fit(views, structure=self._structure_arg(), rng=3)
            b = self.est.fit(views, structure=self._structure_arg(), rng=3)
        else:
            cov = self._sample_cov()
            kw = {"dims": self.kw["dims"], "n_samples": 300, "rng": 3}
            if not self.est.learns_structure:
                kw["structure"] = self.kw["structure"]
            a = self.est.fit_covariance(cov, **kw)
            b = self.est.fit_covariance(cov, **kw)
        assert np.array_equal(np.asarray(a.loadings), np.asarray(b.loadings)), (
            "two fits with the same rng differ")

    def _sample_cov(self):
        x = np.concatenate(self.model.sample(300, rng=self.gen).Xs, axis=1)
        return np.cov(x, rowvar=False)

    def _exact_designs(self):
        from ..identifiability import check_identifiable

        out = []
        for s, dims in self.designs:
            report = check_identifiable(s, dims)
            if self.est.name in report.exact_estimators:
                out.append((Structure.coerce(s, len(dims)), tuple(dims)))
        return out

    def population_exact(self):
        designs = self._exact_designs()
        if not designs:
            return "not named exact on any checked design"
        for s, dims in designs:
            model = random_model(s, dims, rng=self.gen)
            assert_population_recovery(self.est, model, rtol=self.rtol)
        return None

    def _design_model(self):
        designs = self._exact_designs()
        if designs:
            s, dims = designs[0]
            return random_model(s, dims, rng=self.gen)
        return self.model

    def _grams(self, fit):
        if not fit.structured:
            w = np.asarray(fit.loadings)
            return {"all": w @ w.T}
        w = np.asarray(fit.loadings)
        return {b: w[:, fit.structure.columns(b)] @ w[:, fit.structure.columns(b)].T
                for b in fit.structure.blocks}

    def _compare(self, g1, g2, what, rtol=1e-6):
        assert set(g1) == set(g2), f"{what}: different blocks"
        for b in g1:
            scale = max(float(np.linalg.norm(g1[b])), 1e-300)
            err = float(np.linalg.norm(g1[b] - g2[b])) / scale
            assert err <= rtol, f"{what}: block {b} differs by {err:.2e} (relative)"

    def block_rotation_invariance(self):
        if self.est.needs_data:
            return "needs raw data (the check compares population fits)"
        model = self._design_model()
        w = np.array(model.loadings)
        for b in model.structure.blocks:
            c = model.structure.columns(b)
            q, _ = np.linalg.qr(self.gen.standard_normal((c.stop - c.start,) * 2))
            w[:, c] = w[:, c] @ q
        rot = HierarchicalFactorModel(model.dims, model.structure, w, model.noise_var)
        f1 = self._fit_cov(model.covariance(), dims=model.dims, structure=model.structure)
        f2 = self._fit_cov(rot.covariance(), dims=model.dims, structure=model.structure)
        self._compare(self._grams(f1), self._grams(f2), "block rotation")

    def view_rotation_equivariance(self):
        if self.est.needs_data:
            return "needs raw data (the check compares population fits)"
        model = self._design_model()
        dims = model.dims
        blocks = []
        for dm in dims:
            q, _ = np.linalg.qr(self.gen.standard_normal((dm, dm)))
            blocks.append(q)
        import scipy.linalg

        u = scipy.linalg.block_diag(*blocks)
        cov = model.covariance()
        f1 = self._fit_cov(cov, dims=dims, structure=model.structure)
        f2 = self._fit_cov(u @ cov @ u.T, dims=dims, structure=model.structure)
        g1 = {b: u @ g @ u.T for b, g in self._grams(f1).items()}
        self._compare(g1, self._grams(f2), "view rotation")

    def view_rescaling_equivariance(self):
        if self.est.needs_data:
            return "needs raw data (the check compares population fits)"
        model = self._design_model()
        dims, c = model.dims, 3.0
        cov = model.covariance()
        f1 = self._fit_cov(cov, dims=dims, structure=model.structure)
        f2 = self._fit_cov(c * c * cov, dims=dims, structure=model.structure)
        g1 = {b: c * c * g for b, g in self._grams(f1).items()}
        self._compare(g1, self._grams(f2), "common rescaling")
        try:
            est = dataclasses.replace(self.est, noise_rule="per_view")
        except (TypeError, ValidationError):
            return None
        if isinstance(self.est.noise_rule, str) and self.est.noise_rule != "per_view":
            return None  # per-view rescaling changes a scalar-noise model
        scales = np.repeat(self.gen.uniform(0.2, 5.0, len(dims)), dims)
        d = np.diag(scales)
        p1 = self._fit_cov(cov, est=est, dims=dims, structure=model.structure)
        p2 = self._fit_cov(d @ cov @ d, est=est, dims=dims, structure=model.structure)
        g1 = {b: d @ g @ d for b, g in self._grams(p1).items()}
        self._compare(g1, self._grams(p2), "per-view rescaling")
        return None


class _NeedsData(Exception):
    pass


def _expect(call, what: str) -> None:
    try:
        call()
    except (ValidationError, NotIdentifiableError):
        return
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(
            f"{what} raised {type(exc).__name__}, not a ValidationError: {exc}") from exc
    raise AssertionError(f"{what} raised no error")
