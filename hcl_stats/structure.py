"""The sharing structure: which views share which latent block, and with what rank.

A :class:`Structure` is a family of distinct non-empty subsets ``S`` of the views
``{0, ..., M-1}`` together with a rank ``r_S`` for each. Blocks are kept in the
canonical order of the paper: by decreasing ``|S|``, then lexicographically by the
sorted view indices. This order fixes the column order of every loading matrix
``W`` (shape ``(d, K)`` with ``K = sum_S r_S``).

Text form
---------
Views are lettered ``A, B, C, ...`` in data order. A structure is written as
space-separated ``LETTERS:RANK`` tokens, e.g. ``"ABC:3 AB:2 C:1"``. The token
``all:R`` expands to every non-empty subset with rank ``R``.
"""

from __future__ import annotations

import itertools
import numbers
import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._linalg import block_offsets
from ._validation import check_dims, check_int, keyword_alias, short_repr, warn_renamed
from .exceptions import ValidationError

__all__ = ["MAX_ALL_SUBSETS_VIEWS", "MAX_VIEWS", "Structure", "block_key", "format_block"]

#: Largest number of views; the text form letters views ``A`` to ``Z``.
MAX_VIEWS = 26
#: Largest number of views for :meth:`Structure.all_subsets` (``2^M - 1`` blocks;
#: 255 at M = 8). Larger families must list their blocks explicitly.
MAX_ALL_SUBSETS_VIEWS = 8
_LETTERS = string.ascii_uppercase
_TOKEN = re.compile(r"^([A-Za-z]+):(\S+)$")
_RANK = re.compile(r"^[+-]?[0-9]+$")


def block_key(block: Iterable[int]) -> tuple[int, tuple[int, ...]]:
    """Sort key of the canonical order: decreasing size, then lexicographic.

    Examples
    --------
    >>> from hcl_stats.structure import block_key
    >>> sorted([(1,), (0, 1), (0,)], key=block_key)
    [(0, 1), (0,), (1,)]
    """
    members = tuple(sorted(block))
    return (-len(members), members)


def format_block(block: Iterable[int], names: Sequence[str] | None = None) -> str:
    """Render a block with view letters (``"AB"``) or names (``"{text,image}"``).

    Examples
    --------
    >>> from hcl_stats import Structure
    >>> from hcl_stats.structure import format_block
    >>> format_block({0, 1}), format_block({0, 1}, ["text", "image"])
    ('AB', '{text,image}')
    >>> s = Structure.parse("AB:1 A:1")
    >>> Structure.parse(" ".join(f"{format_block(b)}:1" for b in s.blocks)) == s
    True
    """
    members = sorted(block)
    if names is None:
        return "".join(_LETTERS[m] for m in members)
    return "{" + ",".join(names[m] for m in members) + "}"


@dataclass(frozen=True, init=False)
class Structure:
    """A family of view subsets ``S`` sharing latent blocks, with ranks ``r_S``.

    Parameters
    ----------
    n_views : int
        Number of views ``M`` (1 to 26).
    blocks : sequence of iterables of int
        Distinct non-empty subsets of ``range(n_views)``. Stored as
        ``frozenset`` in canonical order.
    ranks : sequence of int
        Positive rank ``r_S`` of each block, aligned with ``blocks``.
    view_names : sequence of str, optional
        Display names of the views (used by summaries; the text form always uses
        letters).
    n_modalities, modality_names : optional
        Deprecated keyword spellings of ``n_views`` and ``view_names``.

    Raises
    ------
    ValidationError
        On an empty, duplicate or out-of-range block, a non-positive rank, or a
        length mismatch.

    Notes
    -----
    The constructor sorts ``blocks`` (and ``ranks`` with them) into the canonical
    order, so two structures built from the same blocks in different orders are
    equal.

    Examples
    --------
    >>> from hcl_stats import Structure
    >>> s = Structure.parse("AB:2 C:1 ABC:3")
    >>> str(s)
    'ABC:3 AB:2 C:1'
    >>> s.total_rank, s.levels()
    (6, ('global', 'partial', 'specific'))
    """

    n_views: int
    blocks: tuple[frozenset[int], ...]
    ranks: tuple[int, ...]
    view_names: tuple[str, ...] | None = None

    def __init__(
        self,
        n_views: int | None = None,
        blocks: Any = None,
        ranks: Any = None,
        view_names: Sequence[str] | None = None,
        *,
        n_modalities: int | None = None,
        modality_names: Sequence[str] | None = None,
    ) -> None:
        n_views = keyword_alias(n_views, "n_views", n_modalities, "n_modalities")
        view_names = keyword_alias(view_names, "view_names", modality_names, "modality_names")
        object.__setattr__(self, "n_views", n_views)
        object.__setattr__(self, "blocks", blocks)
        object.__setattr__(self, "ranks", ranks)
        object.__setattr__(self, "view_names", view_names)
        self.__post_init__()

    def __post_init__(self) -> None:
        m = check_int(self.n_views, "n_views", minimum=1)
        if m > MAX_VIEWS:
            raise ValidationError(
                f"n_views must be <= {MAX_VIEWS}; got {m}."
            )
        blocks = _canonical_blocks(self.blocks, m)
        ranks = list(self.ranks) if not isinstance(self.ranks, str) else None
        if ranks is None or len(ranks) != len(blocks):
            raise ValidationError(
                f"ranks must have one entry per block ({len(blocks)}); got "
                f"{short_repr(self.ranks)}."
            )
        ranks = [
            check_int(r, f"ranks[{i}] (block {format_block(b)})", minimum=1)
            for i, (b, r) in enumerate(zip(blocks, ranks, strict=True))
        ]
        order = sorted(range(len(blocks)), key=lambda i: block_key(blocks[i]))
        names = self.view_names
        if names is not None:
            names = tuple(str(x) for x in names)
            if len(names) != m:
                raise ValidationError(
                    f"view_names must have {m} entries (one per view); got "
                    f"{len(names)}."
                )
            if len(set(names)) != m:
                raise ValidationError(
                    f"view_names must be distinct; got {names!r}."
                )
        object.__setattr__(self, "n_views", m)
        object.__setattr__(self, "blocks", tuple(blocks[i] for i in order))
        object.__setattr__(self, "ranks", tuple(ranks[i] for i in order))
        object.__setattr__(self, "view_names", names)

    # ----------------------------------------------------------------- builders
    @classmethod
    def all_subsets(
        cls,
        n_views: int,
        rank: int | Sequence[int] = 1,
        *,
        view_names: Sequence[str] | None = None,
        modality_names: Sequence[str] | None = None,
    ) -> Structure:
        """Every non-empty subset of the views, each with rank ``rank``.

        Parameters
        ----------
        n_views : int
            Number of views ``M``; the structure has ``2^M - 1`` blocks.
        rank : int or sequence of int, default=1
            Common rank, or one rank per block in canonical order.
        view_names : sequence of str, optional
            Display names of the views.
        modality_names : sequence of str, optional
            Deprecated spelling of ``view_names``.

        Returns
        -------
        Structure

        Examples
        --------
        >>> from hcl_stats import Structure
        >>> str(Structure.all_subsets(3, rank=2))
        'ABC:2 AB:2 AC:2 BC:2 A:2 B:2 C:2'
        """
        view_names = keyword_alias(view_names, "view_names", modality_names, "modality_names")
        m = check_int(n_views, "n_views", minimum=1)
        if m > MAX_ALL_SUBSETS_VIEWS:
            raise ValidationError(
                f"n_views must be <= {MAX_ALL_SUBSETS_VIEWS} for all_subsets "
                f"('all:R'); got {m}, which would create 2^{m} - 1 = {2**m - 1} "
                "blocks (the estimators' cost grows with the number of blocks). List "
                "the blocks explicitly, e.g. 'ABC:2 AB:1 C:1'."
            )
        blocks = sorted(
            (
                frozenset(c)
                for size in range(1, m + 1)
                for c in itertools.combinations(range(m), size)
            ),
            key=block_key,
        )
        if isinstance(rank, Sequence) and not isinstance(rank, str):
            ranks = list(rank)
        else:
            ranks = [rank] * len(blocks)
        return cls(m, tuple(blocks), tuple(ranks), view_names)

    @property
    def n_modalities(self) -> int:
        """Deprecated spelling of :attr:`n_views` (emits a DeprecationWarning)."""
        warn_renamed("n_modalities", "n_views")
        return self.n_views

    @property
    def modality_names(self) -> tuple[str, ...] | None:
        """Deprecated spelling of :attr:`view_names` (emits a DeprecationWarning)."""
        warn_renamed("modality_names", "view_names")
        return self.view_names

    @classmethod
    def parse(
        cls,
        text: str,
        *,
        n_views: int | None = None,
        view_names: Sequence[str] | None = None,
        n_modalities: int | None = None,
        modality_names: Sequence[str] | None = None,
    ) -> Structure:
        """Build a structure from its text form, e.g. ``"ABC:3 AB:2 C:1"``.

        Parameters
        ----------
        text : str
            Whitespace- or comma-separated ``LETTERS:RANK`` tokens, views lettered
            ``A, B, ...`` in data order; ``all:R`` means every subset with rank R.
        n_views : int, optional
            Number of views. Defaults to the highest letter used (required for
            ``all:R`` unless ``view_names`` is given).
        view_names : sequence of str, optional
            Display names; their number also fixes ``n_views``.
        n_modalities, modality_names : optional
            Deprecated spellings of ``n_views`` and ``view_names`` (still accepted).

        Returns
        -------
        Structure

        Raises
        ------
        ValidationError
            On a malformed token, an unknown letter, a duplicate block or a bad rank.

        Examples
        --------
        >>> from hcl_stats import Structure
        >>> str(Structure.parse("all:1", n_views=2))
        'AB:1 A:1 B:1'
        >>> Structure.parse("AB:1 C:2", view_names=["x", "y", "z"]).describe()
        '{x,y}:1 {z}:2'
        """
        n_views = keyword_alias(n_views, "n_views", n_modalities, "n_modalities")
        view_names = keyword_alias(view_names, "view_names", modality_names, "modality_names")
        if not isinstance(text, str):
            raise ValidationError(
                f"structure must be a string such as 'ABC:3 AB:2 C:1'; got "
                f"{short_repr(text)}."
            )
        if view_names is not None and n_views is None:
            n_views = len(view_names)
        if n_views is not None:
            n_views = check_int(n_views, "n_views", minimum=1)
        tokens = text.replace(",", " ").split()
        if not tokens:
            raise ValidationError(
                "structure must contain at least one 'LETTERS:RANK' token; got "
                f"{text!r}."
            )
        blocks: list[frozenset[int]] = []
        ranks: list[int] = []
        for tok in tokens:
            match = _TOKEN.match(tok)
            if match is None:
                raise ValidationError(
                    f"structure token {tok!r} must look like 'AB:3' (view letters, "
                    f"a colon, a positive rank); got it in {text!r}."
                )
            letters, rank_text = match.groups()
            if _RANK.match(rank_text) is None:
                raise ValidationError(
                    f"rank of structure token {tok!r} must be a positive integer; "
                    f"got {rank_text!r}."
                )
            try:
                rank = int(rank_text)
            except ValueError:
                raise ValidationError(
                    f"rank of structure token {tok!r} must be a positive integer; "
                    f"got {rank_text!r}."
                ) from None
            if letters.lower() == "all":
                if len(tokens) != 1:
                    raise ValidationError(
                        f"'all:R' must be the only token in a structure; got {text!r}."
                    )
                if n_views is None:
                    raise ValidationError(
                        "n_views must be given with 'all:R' (it cannot be "
                        "inferred from the text)."
                    )
                return cls.all_subsets(
                    n_views, rank, view_names=view_names
                )
            if letters != letters.upper():
                raise ValidationError(
                    f"view letters must be upper case A-Z; got {letters!r} in "
                    f"token {tok!r}."
                )
            members = [_LETTERS.index(ch) for ch in letters]
            if len(set(members)) != len(members):
                raise ValidationError(
                    f"structure token {tok!r} must use each view letter once; got "
                    f"{letters!r}, which repeats a view letter."
                )
            blocks.append(frozenset(members))
            ranks.append(rank)
        highest = max(max(b) for b in blocks) + 1
        if n_views is None:
            n_views = highest
        elif highest > n_views:
            bad = _LETTERS[highest - 1]
            raise ValidationError(
                f"structure uses view {bad!r} but there are only {n_views} "
                f"views (letters A-{_LETTERS[n_views - 1]})."
            )
        return cls(n_views, tuple(blocks), tuple(ranks), view_names)

    @classmethod
    def coerce(
        cls,
        structure: Any,
        n_views: int,
        *,
        view_names: Sequence[str] | None = None,
        modality_names: Sequence[str] | None = None,
    ) -> Structure:
        """Return ``structure`` (a Structure or text) checked against the number of views.

        ``modality_names`` is the deprecated spelling of ``view_names``.

        Examples
        --------
        >>> from hcl_stats import Structure
        >>> Structure.coerce("AB:1 C:2", 3) == Structure.parse("AB:1 C:2")
        True
        """
        view_names = keyword_alias(view_names, "view_names", modality_names, "modality_names")
        if isinstance(structure, str):
            return cls.parse(
                structure, n_views=n_views, view_names=view_names
            )
        if not isinstance(structure, Structure):
            raise ValidationError(
                "structure must be a Structure or a string such as "
                f"'ABC:3 AB:2 C:1'; got {short_repr(structure)}."
            )
        if structure.n_views != n_views:
            raise ValidationError(
                f"structure has {structure.n_views} views but the data have "
                f"{n_views}."
            )
        return structure

    # ------------------------------------------------------------------ queries
    def __str__(self) -> str:
        return " ".join(
            f"{format_block(b)}:{r}" for b, r in zip(self.blocks, self.ranks, strict=True)
        )

    def __repr__(self) -> str:
        return f"Structure.parse({str(self)!r}, n_views={self.n_views})"

    def __len__(self) -> int:
        return len(self.blocks)

    def __contains__(self, block: object) -> bool:
        if isinstance(block, Iterable):
            return frozenset(block) in self.blocks  # type: ignore[arg-type]
        return False

    @property
    def total_rank(self) -> int:
        """Total latent dimension ``K = sum_S r_S``."""
        return int(sum(self.ranks))

    @property
    def names(self) -> tuple[str, ...]:
        """View display names (letters when no names were given)."""
        if self.view_names is not None:
            return self.view_names
        return tuple(_LETTERS[: self.n_views])

    def index(self, block: Iterable[int]) -> int:
        """Position of ``block`` in the canonical order."""
        try:
            key = frozenset(block)
        except TypeError:
            key = None
        if key is None or not all(
            isinstance(m, numbers.Integral) and not isinstance(m, bool) and 0 <= m < 26
            for m in key
        ):
            raise ValidationError(
                f"block must be a set of view indices such as {{0, 1}}; got {short_repr(block)}."
            )
        try:
            return self.blocks.index(key)
        except ValueError:
            raise ValidationError(
                f"block {format_block(key)} is not in structure {self}."
            ) from None

    def rank_of(self, block: Iterable[int]) -> int:
        """Rank ``r_S`` of ``block``."""
        return self.ranks[self.index(block)]

    def offsets(self) -> tuple[int, ...]:
        """Column offsets of the blocks in ``W``; length ``len(self) + 1``."""
        return tuple(int(x) for x in block_offsets(self.ranks))

    def columns(self, block: Iterable[int]) -> slice:
        """Columns of ``W`` that belong to ``block``."""
        i = self.index(block)
        off = self.offsets()
        return slice(off[i], off[i + 1])

    def blocks_of(self, m: int) -> tuple[frozenset[int], ...]:
        """The blocks that contain view ``m``, in canonical order."""
        return tuple(b for b in self.blocks if m in b)

    def view_rank(self, m: int) -> int:
        """Total rank ``k_m = sum_{S contains m} r_S`` loading on view ``m``."""
        return int(sum(r for b, r in zip(self.blocks, self.ranks, strict=True) if m in b))

    def levels(self) -> tuple[str, ...]:
        """``'global'``, ``'partial'`` or ``'specific'`` for each block.

        A block over all ``M`` views is global, a single-view block is specific,
        anything in between is partial (with ``M = 1`` the only block is global).
        """
        out = []
        for b in self.blocks:
            if len(b) == self.n_views:
                out.append("global")
            elif len(b) == 1:
                out.append("specific")
            else:
                out.append("partial")
        return tuple(out)

    def incidence(self) -> NDArray[np.bool_]:
        """Boolean matrix of shape ``(n_blocks, n_views)``: block contains view."""
        inc = np.zeros((len(self.blocks), self.n_views), dtype=bool)
        for i, b in enumerate(self.blocks):
            inc[i, sorted(b)] = True
        return inc

    def mask(self, dims: Sequence[int]) -> NDArray[np.bool_]:
        """Loading mask of shape ``(d, K)``: True where ``W`` may be non-zero.

        Parameters
        ----------
        dims : sequence of int
            Per-view dimensions ``(d_1, ..., d_M)``.

        Returns
        -------
        mask : ndarray of bool, shape (sum(dims), total_rank)
            ``mask[rows of view m, columns of S]`` is True iff ``m`` is in ``S``.
        """
        dims = self._check_dims(dims)
        rows = np.repeat(np.arange(self.n_views), dims)
        cols = np.repeat(np.arange(len(self.blocks)), self.ranks)
        return self.incidence()[cols][:, rows].T

    def _check_dims(self, dims: Sequence[int]) -> tuple[int, ...]:
        dims = check_dims(dims)
        if len(dims) != self.n_views:
            raise ValidationError(
                f"dims must have {self.n_views} entries (one per view of the "
                f"structure); got {len(dims)}."
            )
        return dims

    def with_names(self, view_names: Sequence[str] | None) -> Structure:
        """Return a copy with other view display names."""
        return Structure(self.n_views, self.blocks, self.ranks, view_names)

    def describe(self) -> str:
        """Render the structure with view names, e.g. ``{text,image}:3 {audio}:2``."""
        names = self.names
        return " ".join(
            f"{format_block(b, names)}:{r}"
            for b, r in zip(self.blocks, self.ranks, strict=True)
        )


def _canonical_blocks(blocks: Any, m: int) -> list[frozenset[int]]:
    if isinstance(blocks, (str, bytes)) or not isinstance(blocks, Iterable):
        raise ValidationError(
            f"blocks must be a sequence of view-index sets; got {short_repr(blocks)}."
        )
    out: list[frozenset[int]] = []
    for i, b in enumerate(blocks):
        if isinstance(b, (str, bytes)) or not isinstance(b, Iterable):
            raise ValidationError(
                f"blocks[{i}] must be a set of view indices; got {short_repr(b)}."
            )
        members = list(b)
        if not members:
            raise ValidationError(f"blocks[{i}] must be non-empty; got an empty set.")
        for v in members:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ValidationError(
                    f"blocks[{i}] must contain integer view indices; got {short_repr(v)}."
                )
            if not 0 <= int(v) < m:
                raise ValidationError(
                    f"blocks[{i}] must contain view indices in 0..{m - 1}; got view "
                    f"index {int(v)}, which is out of range 0..{m - 1} for "
                    f"n_views={m}."
                )
        fb = frozenset(int(v) for v in members)
        if len(fb) != len(members):
            raise ValidationError(
                f"blocks[{i}] must not repeat a view index; got {sorted(members)}."
            )
        if fb in out:
            raise ValidationError(
                f"blocks must be distinct; got blocks[{i}] = {format_block(fb)}, which "
                "appears twice (merge the two blocks into one with the summed rank)."
            )
        out.append(fb)
    if not out:
        raise ValidationError("blocks must contain at least one block; got none.")
    return out
