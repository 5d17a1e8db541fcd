"""Population quantities, explicit error bounds and empirical rate fitting.

The toolkit exists to put empirical errors next to theoretical bounds:

* :mod:`~hcl_stats.theory.bounds` (numpy only): :func:`population_quantities`,
  the numbers every bound depends on (``||Sigma||``, singular values and
  condition numbers of ``W`` and of each block, the eigengap, the effective
  rank), and the bound formulas, each a pure function of those numbers and of
  ``n`` or ``m`` with every constant written down (derivations in
  ``docs/theory.md``):

  - :func:`covariance_concentration` (Gaussian, explicit constants 2 and 1),
  - :func:`subspace_bound` (Davis-Kahan, explicit constant 2),
  - :func:`loading_bound` (overall Gram error; a proven ``"sharp"`` form for the
    denoised rank-``K`` truncation and the paper's reconstructed ``"paper"`` form
    with a unit constant),
  - :func:`block_loading_bound` (per block; paper form, unit constant),
  - :func:`beta_error_bound`, :func:`excess_risk_bound`, :func:`group_lasso_bound`
    (downstream);

* :mod:`~hcl_stats.theory.rates` (pandas, statsmodels): :func:`fit_rate` /
  :func:`fit_rates`, log-log OLS of replicate-level errors on a sample size with
  heteroscedasticity-robust standard errors, a test against the theoretical
  exponent and the empirical/bound ratio across the grid; :func:`fit_terms`;
* :mod:`~hcl_stats.theory.plots` (matplotlib): :func:`~hcl_stats.theory.plots.plot_rate`;
* :mod:`~hcl_stats.theory.rates_report`: the ``hcl-stats rates`` tables and figures.

``paper.md`` §4.2 could not retrieve the paper's theorem statements, so the
"paper" forms are reconstructions whose constants are unknown: they are unit by
default and are meant to be fitted (one multiplicative constant) when overlaid on
data. Only exponents are tested against data; constants are reported.
"""

from __future__ import annotations

from .bounds import (
    PopulationQuantities,
    beta_error_bound,
    block_loading_bound,
    covariance_concentration,
    excess_risk_bound,
    group_lasso_bound,
    loading_bound,
    population_quantities,
    subspace_bound,
    tail_t,
)
from .rates import RateFit, TermFit, fit_rate, fit_rates, fit_terms

__all__ = [
    "PopulationQuantities",
    "RateFit",
    "TermFit",
    "beta_error_bound",
    "block_loading_bound",
    "covariance_concentration",
    "excess_risk_bound",
    "fit_rate",
    "fit_rates",
    "fit_terms",
    "group_lasso_bound",
    "loading_bound",
    "population_quantities",
    "subspace_bound",
    "tail_t",
]
