"""Read and write qwen-opt weight stores (.qws) from Python.

Mirrors include/qwen/Support/WeightStore.h byte for byte: a 64-byte header,
64-byte aligned tensor data, and the index at the end. Used by fixture and
export scripts to hand weights to the C++ tools without going through IR text.
"""

from __future__ import annotations

import os
import struct
from typing import Dict, Iterator, Tuple

import numpy as np

MAGIC = b"QWENWTS1"
VERSION = 1
ALIGNMENT = 64
HEADER = struct.Struct("<8sIIQQQQ16x")
assert HEADER.size == 64

# dtype code <-> numpy dtype (bf16 has no numpy dtype: stored as uint16 bits).
_CODES = {
    1: np.dtype("<f4"),
    2: np.dtype("<f2"),
    3: np.dtype("<u2"),  # bf16 bit patterns
    4: np.dtype("<f8"),
    5: np.dtype("i1"),
    6: np.dtype("u1"),
    7: np.dtype("<i2"),
    8: np.dtype("<i4"),
    9: np.dtype("<i8"),
    10: np.dtype("?"),
}
_BY_DTYPE = {v: k for k, v in _CODES.items() if k != 3}
# int4 / uint4: two per byte, low nibble first; read back unpacked to (u)int8.
_NIBBLES = {11: np.dtype("i1"), 12: np.dtype("u1")}


class WeightStoreError(Exception):
    pass


def write(path: str, tensors: Dict[str, np.ndarray], bf16: Tuple[str, ...] = ()) -> None:
    """Writes `tensors` (name -> array) to `path` atomically.

    Names listed in `bf16` must be uint16 arrays of bf16 bit patterns.
    """
    tmp = path + ".tmp"
    index = bytearray()
    try:
        with open(tmp, "wb") as f:
            f.write(b"\0" * HEADER.size)
            pos = HEADER.size
            for name, array in tensors.items():
                if not name:
                    raise WeightStoreError("empty tensor name")
                # (np.ascontiguousarray would turn a 0-d array into 1-d.)
                array = np.asarray(array)
                if not array.flags.c_contiguous:
                    array = array.copy(order="C")
                if name in bf16:
                    if array.dtype != np.uint16:
                        raise WeightStoreError(f"{name}: bf16 data must be uint16 bit patterns")
                    code = 3
                else:
                    code = _BY_DTYPE.get(array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype)
                    if code is None:
                        raise WeightStoreError(f"{name}: unsupported dtype {array.dtype}")
                    array = array.astype(_CODES[code], copy=False)
                pad = (-pos) % ALIGNMENT
                f.write(b"\0" * pad)
                pos += pad
                data = array.tobytes()
                f.write(data)
                encoded = name.encode("utf-8")
                index += struct.pack("<I", len(encoded)) + encoded
                index += struct.pack("<BBH", code, array.ndim, 0)
                index += struct.pack(f"<{array.ndim}q", *array.shape)
                index += struct.pack("<QQ", pos, len(data))
                pos += len(data)
            index_offset = pos
            f.write(index)
            pos += len(index)
            f.seek(0)
            f.write(HEADER.pack(MAGIC, VERSION, ALIGNMENT, len(tensors), index_offset, len(index), pos))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def entries(path: str) -> Iterator[Tuple[str, np.ndarray]]:
    """Yields (name, array) for every tensor, memory-mapped, in file order."""
    size = os.path.getsize(path)
    if size < HEADER.size:
        raise WeightStoreError(f"{path}: truncated")
    data = np.memmap(path, dtype=np.uint8, mode="r")
    magic, version, _align, count, index_offset, index_bytes, file_bytes = HEADER.unpack(
        bytes(data[: HEADER.size]))
    if magic != MAGIC or version != VERSION:
        raise WeightStoreError(f"{path}: not a version-{VERSION} weight store")
    if file_bytes != size or index_offset + index_bytes > size:
        raise WeightStoreError(f"{path}: truncated")
    index = bytes(data[index_offset : index_offset + index_bytes])
    p = 0
    for _ in range(count):
        (n,) = struct.unpack_from("<I", index, p)
        p += 4
        name = index[p : p + n].decode("utf-8")
        p += n
        code, rank, _ = struct.unpack_from("<BBH", index, p)
        p += 4
        shape = struct.unpack_from(f"<{rank}q", index, p)
        p += 8 * rank
        offset, nbytes = struct.unpack_from("<QQ", index, p)
        p += 16
        if offset + nbytes > index_offset:
            raise WeightStoreError(f"{path}: entry '{name}' lies outside the data region")
        if code in _NIBBLES:
            n = int(np.prod(shape, dtype=np.int64))
            packed = np.frombuffer(data, np.uint8, nbytes, offset)
            nib = np.stack([packed & 0xF, packed >> 4], axis=-1).reshape(-1)[:n]
            if code == 11:
                nib = np.where(nib >= 8, nib.astype(np.int16) - 16, nib)
            yield name, nib.astype(_NIBBLES[code]).reshape(shape)
            continue
        if code not in _CODES:
            raise WeightStoreError(f"{path}: entry '{name}' has unknown dtype {code}")
        dtype = _CODES[code]
        if offset + nbytes > index_offset:
            raise WeightStoreError(f"{path}: entry '{name}' lies outside the data region")
        count_elems = nbytes // dtype.itemsize
        yield name, np.frombuffer(data, dtype, count_elems, offset).reshape(shape)


def read(path: str) -> Dict[str, np.ndarray]:
    return dict(entries(path))
