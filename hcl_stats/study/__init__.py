"""Monte Carlo studies: configs, registries, execution, storage, summaries and reports.

Data flow one way through the modules of this package::

    registry  <-  metrics, tasks/  <-  specs, config  <-  store  <-  compute  <-  runner
                                                          store  <-  summary  <-  report

* :mod:`~hcl_stats.study.registry`: tasks, metrics, estimator specs, seed streams;
* :mod:`~hcl_stats.study.metrics` and :mod:`~hcl_stats.study.tasks`: the built-in
  metrics and tasks, registered here by explicit imports (no plug-in loading);
* :mod:`~hcl_stats.study.config`: :func:`load_study` (one parser per section) and
  :mod:`~hcl_stats.study.specs`: the typed ``[report]`` specs;
* :mod:`~hcl_stats.study.store` (SQLite), :mod:`~hcl_stats.study.compute` (one
  unit: :func:`~hcl_stats.study.compute.compute_unit`) and
  :mod:`~hcl_stats.study.runner` (the backends:
  :func:`~hcl_stats.study.runner.run_study`);
* :mod:`~hcl_stats.study.summary` and :mod:`~hcl_stats.study.report`
  (``summary.csv``, figures, tables, ``MANIFEST.json``).

The file format is described in :mod:`hcl_stats.study.config` and
``simulations/README.md``. Every name that ``hcl_stats.study`` had as a single
module is importable from here.
"""

from __future__ import annotations

from . import metrics, tasks  # noqa: F401  (register the built-in metrics and tasks)
from .config import (
    MAX_CELLS,
    MAX_CONFIG_BYTES,
    MAX_REPLICATIONS,
    Cell,
    Study,
    factor_digest,
    load_study,
)
from .registry import (
    SAMPLERS,
    STREAM_DATA,
    STREAM_METHOD,
    STREAM_MODEL,
    Draw,
    EstimatorSpec,
    MetricContext,
    MetricSpec,
    Task,
    available_metrics,
    available_tasks,
    default_analyse,
    get_metric,
    get_task,
    register_metric,
    register_task,
    unit_rng,
)
from .specs import SAFE_NAME, ReportSpec, is_safe_name
from .tasks.recovery import RECOVERY_DEFAULTS, random_model

__all__ = [
    "MAX_CELLS",
    "MAX_CONFIG_BYTES",
    "MAX_REPLICATIONS",
    "RECOVERY_DEFAULTS",
    "SAFE_NAME",
    "SAMPLERS",
    "STREAM_DATA",
    "STREAM_METHOD",
    "STREAM_MODEL",
    "Cell",
    "Draw",
    "EstimatorSpec",
    "MetricContext",
    "MetricSpec",
    "ReportSpec",
    "Study",
    "Task",
    "available_metrics",
    "available_tasks",
    "default_analyse",
    "factor_digest",
    "get_metric",
    "get_task",
    "is_safe_name",
    "load_study",
    "random_model",
    "register_metric",
    "register_task",
    "unit_rng",
]
