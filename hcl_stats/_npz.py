"""Read the arrays of an ``.npz`` file without copying them through zipfile (private).

``numpy.savez`` stores its members uncompressed, so each ``.npy`` member is a
contiguous byte range of the file. :func:`read_npz` memory-maps those ranges
read-only after checking each member's CRC-32 against the zip directory, which
is what ``numpy.load`` checks too, but without reading every byte into a Python
buffer and copying it into the array (about half the CPU time of loading a
300 MB file). Compressed members (``numpy.savez_compressed``), object arrays and
anything unusual are read by ``numpy.load``.
"""

from __future__ import annotations

import mmap
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__: list[str] = []

_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # 30 bytes
_LOCAL_MAGIC = b"PK\x03\x04"
#: CRC bytes per call (keeps the GIL released in long stretches, bounded buffers)
_CRC_CHUNK = 64 * 2**20


def read_npz(path: str | os.PathLike) -> tuple[list[NDArray], list[str]]:
    """Arrays and names of an ``.npz`` file, in stored order.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    arrays : list of ndarray
        Read-only memory maps for stored members, in-memory arrays otherwise.
    names : list of str
        Member names without the ``.npy`` suffix (as ``numpy.load`` gives them).

    Raises
    ------
    ValueError, OSError, EOFError, zipfile.BadZipFile
        As ``numpy.load`` for an unreadable file; ``zipfile.BadZipFile`` when a
        member's CRC-32 does not match the zip directory.
    """
    path = Path(path)
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
    if not all(_mappable(i) for i in infos):
        return _numpy_load(path)
    arrays, names = [], []
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        for info in infos:
            start = _member_start(mm, info)
            if start is None:
                return _numpy_load(path)
            stop = start + info.file_size
            crc = 0
            view = memoryview(mm)
            try:
                for pos in range(start, stop, _CRC_CHUNK):
                    crc = zlib.crc32(view[pos : min(pos + _CRC_CHUNK, stop)], crc)
            finally:
                view.release()
            if crc != info.CRC:
                raise zipfile.BadZipFile(f"Bad CRC-32 for file {info.filename!r}")
            fh.seek(start)
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                return _numpy_load(path)
            offset = fh.tell()
            count = int(np.prod(shape, dtype=np.int64))
            if dtype.hasobject or offset + count * dtype.itemsize != stop:
                return _numpy_load(path)
            order = "F" if fortran else "C"
            if count == 0:  # nothing to map
                arrays.append(np.empty(shape, dtype=dtype, order=order))
            else:
                arrays.append(np.memmap(path, dtype=dtype, mode="r", offset=offset,
                                        shape=shape, order=order))
            names.append(info.filename[: -len(".npy")])
    return arrays, names


def _mappable(info: zipfile.ZipInfo) -> bool:
    return (info.compress_type == zipfile.ZIP_STORED and info.filename.endswith(".npy")
            and not info.flag_bits & 0x1 and info.file_size == info.compress_size)


def _member_start(mm: mmap.mmap, info: zipfile.ZipInfo) -> int | None:
    """Offset of a stored member's first byte, from its local header."""
    head = info.header_offset
    if head + _LOCAL_HEADER.size > len(mm):
        return None
    fields = _LOCAL_HEADER.unpack(mm[head : head + _LOCAL_HEADER.size])
    if fields[0] != _LOCAL_MAGIC:
        return None
    name_len, extra_len = fields[9], fields[10]
    start = head + _LOCAL_HEADER.size + name_len + extra_len
    return start if start + info.file_size <= len(mm) else None


def _numpy_load(path: Path) -> tuple[list[NDArray], list[str]]:
    with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as npz:
        names = list(npz.files)
        return [np.asarray(npz[k]) for k in names], names
