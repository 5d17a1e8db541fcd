"""The memory-mapped .npz reader of ``hcl-stats fit`` returns what numpy.load returns,
and refuses a corrupted member as numpy.load does."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from hcl_stats._npz import read_npz


def _arrays(rng):
    return {
        "A": rng.standard_normal((7, 3)),
        "B": np.asfortranarray(rng.standard_normal((7, 5))),
        "C": rng.integers(-5, 5, size=(7, 2)).astype(np.int32),
        "D": rng.standard_normal((7, 4)).astype(np.float32),
        "E": np.zeros((0, 3)),
    }


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_same_arrays_names_and_order_as_numpy_load(tmp_path, rng, save):
    arrays = _arrays(rng)
    path = tmp_path / "x.npz"
    save(path, **arrays)
    views, names = read_npz(path)
    with np.load(path) as ref:
        assert names == list(ref.files) == list(arrays)
        for v, k in zip(views, names, strict=True):
            assert v.dtype == ref[k].dtype
            assert v.shape == ref[k].shape
            assert np.array_equal(v, ref[k])
            assert v.flags.f_contiguous == ref[k].flags.f_contiguous
    if save is np.savez:  # stored members are mapped, not copied, and read-only
        assert isinstance(views[0], np.memmap)
        assert not views[0].flags.writeable


def test_a_flipped_byte_fails_the_crc_check(tmp_path, rng):
    path = tmp_path / "x.npz"
    np.savez(path, A=rng.standard_normal((50, 4)))
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.infolist()[0]
    raw[info.header_offset + 30 + len(info.filename) + 200] ^= 0x40  # inside the data
    path.write_bytes(bytes(raw))
    with pytest.raises(zipfile.BadZipFile, match="CRC"):
        read_npz(path)
    with pytest.raises(zipfile.BadZipFile, match="CRC"), np.load(path) as npz:
        npz["A"]


def test_not_a_zip_file_raises_like_numpy(tmp_path):
    path = tmp_path / "x.npz"
    path.write_bytes(b"not a zip archive at all")
    with pytest.raises(zipfile.BadZipFile):
        read_npz(path)


def test_views_from_a_mapped_npz_are_validated_without_a_copy(tmp_path, rng):
    from hcl_stats import MultimodalData
    from hcl_stats.exceptions import ValidationError

    path = tmp_path / "x.npz"
    a, b = rng.standard_normal((30, 3)), rng.standard_normal((30, 4))
    np.savez(path, A=a, B=b)
    views, _ = read_npz(path)
    data = MultimodalData(views)
    assert all(np.shares_memory(x, v) for x, v in zip(data.Xs, views, strict=True))
    assert not any(x.flags.writeable for x in data.Xs)
    assert np.array_equal(data.Xs[0], a)
    # a writable array is still copied, and a non-finite mapped value still refused
    own = MultimodalData([a, b])
    assert not np.shares_memory(own.Xs[0], a)
    b[5, 2] = np.nan
    np.savez(path, A=a, B=b)
    views, _ = read_npz(path)
    with pytest.raises(ValidationError, match=r"views\[1\] must contain only finite"):
        MultimodalData(views)
