"""numpy mirror of --qwen-quantize-weights (round to nearest, f32 arithmetic).

Used by rtn_roundtrip.py (and importable on its own): `rtn` quantizes a
[rows, cols] f32 weight exactly as lib/Transforms/QuantizeWeights.cpp does,
`pack` packs codes the way getWeightComponents / the linalg lowering read
them (LSB first per row, `bits` per code, rows padded to whole bytes),
`unpack` and `dequant` read them back independently.
"""
import numpy as np

F = np.float32


def block_size(granularity, group_size, cols):
    if granularity == "group":
        return group_size
    return cols


def rtn(w, bits, symmetric, signed, granularity, group_size):
    """Returns (codes int32 [rows, cols] as stored (signed values for signed
    codes), scales f32 [1] or [rows, perRow], zeros int32 same shape or None)."""
    w = np.asarray(w, F)
    rows, cols = w.shape
    half = 1 << (bits - 1)
    levels = (1 << bits) - 1
    if granularity == "tensor":
        blocks = w.reshape(1, 1, rows * cols)
    else:
        bs = block_size(granularity, group_size, cols)
        blocks = w.reshape(rows, cols // bs, bs)
    with np.errstate(divide="ignore", invalid="ignore"):
        if symmetric:
            amax = np.abs(blocks).max(axis=-1)
            scale = (amax / F(half - 1)).astype(F)
            q = np.rint(blocks / scale[..., None]).astype(F)
            q = np.where(scale[..., None] == 0, 0, np.clip(q, -(half - 1), half - 1)).astype(np.int64)
            codes = q if signed else q + half
            zeros = None
        else:
            lo = np.minimum(blocks.min(axis=-1), F(0)).astype(F)
            hi = np.maximum(blocks.max(axis=-1), F(0)).astype(F)
            scale = ((hi - lo).astype(F) / F(levels)).astype(F)
            zp = np.rint((-lo).astype(F) / scale).astype(F)
            zp = np.where(scale == 0, 0, np.clip(zp, 0, levels)).astype(np.int64)
            q = np.rint(blocks / scale[..., None]).astype(F)
            q = np.where(scale[..., None] == 0, zp[..., None],
                         np.clip(np.nan_to_num(q).astype(np.int64) + zp[..., None], 0, levels))
            codes = q - half if signed else q
            zeros = zp - half if signed else zp
    codes = codes.reshape(rows, cols).astype(np.int64)
    if granularity == "tensor":
        scale = scale.reshape(1)
        zeros = None if zeros is None else zeros.reshape(1)
    return codes, scale.astype(F), zeros


def pack(codes, bits):
    rows, cols = codes.shape
    row_bytes = (cols * bits + 7) // 8
    u = (codes & ((1 << bits) - 1)).astype(np.uint32)
    bitplanes = ((u[:, :, None] >> np.arange(bits, dtype=np.uint32)) & 1).astype(np.uint8)
    stream = bitplanes.reshape(rows, cols * bits)
    pad = np.zeros((rows, row_bytes * 8 - cols * bits), np.uint8)
    return np.packbits(np.concatenate([stream, pad], axis=1), axis=1, bitorder="little")


def unpack(packed, cols, bits, signed):
    rows = packed.shape[0]
    stream = np.unpackbits(packed, axis=1, bitorder="little")[:, :cols * bits]
    v = (stream.reshape(rows, cols, bits).astype(np.int64) << np.arange(bits)).sum(-1)
    if signed:
        v = np.where(v >= (1 << (bits - 1)), v - (1 << bits), v)
    return v


def dequant(codes, scales, zeros, bits, symmetric, signed, granularity, group_size):
    rows, cols = codes.shape
    if symmetric:
        zp = np.zeros_like(scales, dtype=np.int64) + (0 if signed else 1 << (bits - 1))
    else:
        zp = zeros.astype(np.int64)
    if granularity == "tensor":
        s = np.full((rows, cols), scales[0], F)
        z = np.full((rows, cols), zp[0])
    else:
        bs = block_size(granularity, group_size, cols)
        s = np.repeat(scales, bs, axis=1)
        z = np.repeat(zp, bs, axis=1)
    return ((codes - z).astype(F) * s).astype(F)
