"""The built-in study tasks, each registered when its module is imported.

==================== ======================================================
``recovery``         :mod:`~hcl_stats.study.tasks.recovery`
``structure_recovery`` :mod:`~hcl_stats.study.tasks.structure_recovery`
``structure_benchmark`` :mod:`~hcl_stats.study.tasks.structure_benchmark` (and the
                     ``selection`` and ``oracle_gram_rel`` metrics)
``missing_views``    :mod:`~hcl_stats.study.tasks.missing_views`
``downstream``       :mod:`~hcl_stats.study.tasks.downstream` (and the ``ds_*``
                     and ``gram_bound`` metrics)
==================== ======================================================
"""

from __future__ import annotations

from . import (
    downstream,
    missing_views,
    recovery,
    structure_benchmark,
    structure_recovery,
)

__all__ = [
    "downstream",
    "missing_views",
    "recovery",
    "structure_benchmark",
    "structure_recovery",
]
