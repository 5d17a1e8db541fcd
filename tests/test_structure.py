import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import structures

from hcl_stats import Structure
from hcl_stats.exceptions import ValidationError


@given(structures(max_views=6))
def test_text_form_round_trips(s):
    assert Structure.parse(str(s), n_views=s.n_views) == s


@given(structures(max_views=5), st.randoms())
def test_construction_order_does_not_matter(s, random):
    pairs = list(zip(s.blocks, s.ranks, strict=True))
    random.shuffle(pairs)
    shuffled = Structure(s.n_views, [b for b, _ in pairs], [r for _, r in pairs])
    assert shuffled == s
    keys = [(-len(b), tuple(sorted(b))) for b in s.blocks]
    assert keys == sorted(keys)


@given(structures(max_views=5), st.data())
def test_mask_matches_incidence(s, data):
    dims = tuple(data.draw(st.integers(1, 4)) for _ in range(s.n_views))
    mask = s.mask(dims)
    assert mask.shape == (sum(dims), s.total_rank)
    off = np.concatenate([[0], np.cumsum(dims)])
    for b in s.blocks:
        cols = s.columns(b)
        assert cols.stop - cols.start == s.rank_of(b)
        for m in range(s.n_views):
            block = mask[off[m] : off[m + 1], cols]
            assert block.all() if m in b else not block.any()
    assert s.incidence().sum() == sum(len(b) for b in s.blocks)


def test_all_subsets_and_levels():
    s = Structure.all_subsets(3, rank=2)
    assert str(s) == "ABC:2 AB:2 AC:2 BC:2 A:2 B:2 C:2"
    assert s.levels() == ("global",) + ("partial",) * 3 + ("specific",) * 3
    assert s.total_rank == 14
    assert len(Structure.all_subsets(6, 1)) == 63
    assert s.view_rank(0) == 8
    assert s.blocks_of(2) == (frozenset({0, 1, 2}), frozenset({0, 2}), frozenset({1, 2}), frozenset({2}))
    assert Structure.parse("all:2", n_views=3) == s


def test_parse_examples():
    s = Structure.parse("C:1, AB:2  ABC:3")
    assert str(s) == "ABC:3 AB:2 C:1"
    assert s.ranks == (3, 2, 1)
    assert s.n_views == 3
    assert Structure.parse("AB:1", n_views=4).n_views == 4
    named = Structure.parse("AB:1 A:2", view_names=("text", "image"))
    assert named.describe() == "{text,image}:1 {text}:2"


@pytest.mark.parametrize(
    ("text", "kwargs", "match"),
    [
        ("AB:0", {}, r"ranks\[0\] \(block AB\) must be >= 1; got 0"),
        ("AB:x", {}, "rank of structure token 'AB:x' must be a positive integer"),
        ("AB", {}, "structure token 'AB' must look like 'AB:3'"),
        ("AB:1 BA:2", {}, "appears twice"),
        ("AA:1", {}, "repeats a view letter"),
        ("AD:1", {"n_views": 3}, "uses view 'D' but there are only 3 views"),
        ("ab:1", {}, "must be upper case"),
        ("all:2", {}, "n_views must be given with 'all:R'"),
        ("", {}, "at least one 'LETTERS:RANK' token"),
    ],
)
def test_parse_errors(text, kwargs, match):
    with pytest.raises(ValidationError, match=match):
        Structure.parse(text, **kwargs)


@pytest.mark.parametrize(
    ("blocks", "ranks", "match"),
    [
        ([[]], [1], r"blocks\[0\] must be non-empty"),
        ([[0, 3]], [1], "view index 3, which is out of range 0..1"),
        ([[0], [0]], [1, 1], "appears twice"),
        ([[0]], [1, 2], "ranks must have one entry per block"),
        ([[0]], [1.5], "must be an integer"),
    ],
)
def test_constructor_errors(blocks, ranks, match):
    with pytest.raises(ValidationError, match=match):
        Structure(2, blocks, ranks)


def test_mask_rejects_wrong_dims():
    s = Structure.all_subsets(2, 1)
    with pytest.raises(ValidationError, match="dims must have 2 entries"):
        s.mask((3,))
    with pytest.raises(ValidationError, match=r"dims\[1\] must be a positive integer; got 0"):
        s.mask((3, 0))


def test_block_lookup():
    s = Structure.all_subsets(3, [3, 2, 2, 2, 1, 1, 1])
    assert s.columns({0, 1}) == slice(3, 5)
    assert s.offsets() == (0, 3, 5, 7, 9, 10, 11, 12)
    with pytest.raises(ValidationError, match="block AB is not in structure"):
        Structure.parse("A:1 B:1").columns({0, 1})
    assert {0, 1} in s
    assert all(frozenset(c) in s for c in itertools.combinations(range(3), 2))
