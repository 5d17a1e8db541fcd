"""Result labels of the study metrics: one place that writes and reads them (private).

A metric returns ``{label: value}``. The labels are text because they are stored
(SQLite, ``summary.csv``): ``"A|ABC"`` is the block of view A in structure ABC
(:func:`view_block_label`), ``"ABC"`` a structure (:func:`hcl_stats.structure.format_block`),
``"mean"`` / ``"overall"`` summaries, any other word a named score.
:func:`parse_label` turns a label back into a :class:`LabelKey`, whose
:meth:`~LabelKey.sort_key` is the display order of tables and figures.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .structure import format_block

__all__ = ["LabelKey", "cell_value", "label_sort_key", "parse_label", "view_block_label"]

SUMMARY_LABELS = ("mean", "overall")


def view_block_label(view: int, block: Iterable[int]) -> str:
    """The label of the block of view ``view`` (0-based) in structure ``block``.

    Examples
    --------
    >>> view_block_label(0, {0, 1, 2})
    'A|ABC'
    """
    return f"{format_block([view])}|{format_block(block)}"


@dataclass(frozen=True)
class LabelKey:
    """A parsed label: ``kind`` is ``'structure'``, ``'view_block'``, ``'other'`` or ``'summary'``."""

    kind: str
    text: str
    view: str = ""
    structure: str = ""

    def sort_key(self) -> tuple:
        """Display order: structures (larger first), view blocks, other labels, summaries."""
        if self.kind == "summary":
            return (3, self.text)
        if self.kind == "view_block":
            return (1, self.view, -len(self.structure), self.structure)
        if self.kind == "structure":
            return (0, -len(self.structure), self.structure)
        return (2, self.text)


def parse_label(label: str) -> LabelKey:
    """Parse a stored label.

    Examples
    --------
    >>> parse_label("A|ABC")
    LabelKey(kind='view_block', text='A|ABC', view='A', structure='ABC')
    >>> parse_label("BC").kind, parse_label("mean").kind, parse_label("exact").kind
    ('structure', 'summary', 'other')
    """
    if label in SUMMARY_LABELS:
        return LabelKey("summary", label)
    if "|" in label:
        view, _, s = label.partition("|")
        return LabelKey("view_block", label, view=view, structure=s)
    if label.isalpha() and label.isupper():
        return LabelKey("structure", label, structure=label)
    return LabelKey("other", label)


def label_sort_key(label: str) -> tuple:
    """Display order of labels: blocks in canonical structure order, then summaries.

    ``"A|ABC"`` (view A of structure ABC) sorts by view, then by structure in
    canonical order (larger blocks first); ``"ABC"`` by canonical order;
    ``"mean"`` and ``"overall"`` come last; other labels alphabetically.

    Examples
    --------
    >>> sorted(["mean", "A", "A|AB", "AB", "exact"], key=label_sort_key)
    ['AB', 'A', 'A|AB', 'exact', 'mean']
    """
    return parse_label(label).sort_key()


def cell_value(v: Any) -> Any:
    """A grid value as it appears in ``summary.csv`` (lists as JSON text).

    Examples
    --------
    >>> cell_value([0.5, 1.5]), cell_value(500)
    ('[0.5, 1.5]', 500)
    """
    return json.dumps(v) if isinstance(v, list) else v
