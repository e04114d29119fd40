"""A reader of TensorFlow checkpoints ("tensor bundles") that needs no TensorFlow.

A TF 1.x/2.x checkpoint with prefix P is two files (tensorflow/core/util/
tensor_bundle/tensor_bundle.h):

- `P.index`: a LevelDB-format sorted table (SSTable) mapping each variable
  name to a `BundleEntryProto` (dtype, shape, shard, offset, size, crc32c);
  the empty key holds a `BundleHeaderProto` (shard count, endianness).
- `P.data-SSSSS-of-NNNNN`: the tensors' raw bytes, little-endian, row-major,
  at the offsets the entries give.

The table, as written by TensorFlow (no compression):

    file    = data blocks | meta-index block | index block | footer (48 bytes)
    footer  = meta-index handle, index handle (varint offset + varint size each),
              zero padding to 40 bytes, magic 0xdb4775248b80fb57 (uint64 LE)
    block   = entries | restart offsets (uint32 LE each) | restart count (uint32 LE)
              followed on disk by a 5-byte trailer (compression type, crc32c)
    entry   = shared (varint), unshared (varint), value size (varint),
              key[shared:] (unshared bytes), value
              (a key shares its first `shared` bytes with the previous key)

The index block maps the last key of each data block to that block's handle.
Only what checkpoints of float variables need is read here; anything else
(compressed blocks, several shards, big-endian bundles) raises ValueError.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .onnx_reader import fields, varint

MAGIC = 0xDB4775248B80FB57
FOOTER = 48
# tensorflow DataType enum -> numpy dtype (the ones checkpoints of models hold).
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64, 10: np.bool_, 19: np.float16}


def _handle(data: bytes, pos: int) -> tuple[tuple[int, int], int]:
    offset, pos = varint(data, pos)
    size, pos = varint(data, pos)
    return (offset, size), pos


def _block(table: bytes, handle: tuple[int, int]) -> list[tuple[bytes, bytes]]:
    """The (key, value) entries of the block at `handle`."""
    offset, size = handle
    if offset + size + 5 > len(table):
        raise ValueError("index file truncated: a block runs past its end")
    if table[offset + size] != 0:
        raise ValueError("compressed checkpoint index blocks are not supported")
    block = table[offset:offset + size]
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 - 4 * restarts
    entries, key, pos = [], b"", 0
    while pos < end:
        shared, pos = varint(block, pos)
        unshared, pos = varint(block, pos)
        value_size, pos = varint(block, pos)
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        entries.append((key, block[pos:pos + value_size]))
        pos += value_size
    return entries


@dataclass(frozen=True)
class Entry:
    """Where one tensor lives: dtype (TF enum), shape, shard, byte offset and size."""

    dtype: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int


def _entry(value: bytes) -> Entry:
    dtype, shape, shard, offset, size = 0, [], 0, 0, 0
    for number, _, raw in fields(value):
        if number == 1:
            dtype = raw
        elif number == 2:
            for n, _, dim in fields(raw):
                if n == 2:
                    shape.append(next((v for k, _, v in fields(dim) if k == 1), 0))
        elif number == 3:
            shard = raw
        elif number == 4:
            offset = raw
        elif number == 5:
            size = raw
        elif number == 7:
            raise ValueError("partitioned (sliced) checkpoint variables are not supported")
    return Entry(dtype, tuple(shape), shard, offset, size)


def read_index(path: str | Path) -> dict[str, Entry]:
    """Variable name -> Entry, from a bundle's `.index` file."""
    table = Path(path).read_bytes()
    if len(table) < FOOTER:
        raise ValueError(f"{path}: too short to be a checkpoint index")
    footer = table[-FOOTER:]
    (magic,) = struct.unpack_from("<Q", footer, 40)
    if magic != MAGIC:
        raise ValueError(f"{path}: not a TensorFlow checkpoint index (bad magic number)")
    _, pos = _handle(footer, 0)
    index_handle, _ = _handle(footer, pos)
    entries: dict[str, Entry] = {}
    for _, handle_bytes in _block(table, index_handle):
        handle, _ = _handle(handle_bytes, 0)
        for key, value in _block(table, handle):
            if key == b"":  # BundleHeaderProto: num_shards = 1, endianness = 2
                header = {n: v for n, _, v in fields(value)}
                if header.get(1, 1) != 1:
                    raise ValueError("checkpoints in several shards are not supported")
                if header.get(2, 0) != 0:
                    raise ValueError("big-endian checkpoints are not supported")
                continue
            entries[key.decode()] = _entry(value)
    return entries


def read(prefix: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of the bundle at `prefix` (e.g. "dir/" for `dir/.index`).

    Raises:
        FileNotFoundError: the index or data file is missing.
        ValueError: the files are not a bundle this reader understands.
    """
    prefix = str(prefix)
    entries = read_index(prefix + ".index")
    data = Path(prefix + ".data-00000-of-00001").read_bytes()
    tensors = {}
    for name, entry in entries.items():
        if entry.dtype not in DTYPES:
            continue  # strings and resources: not weights
        dtype = np.dtype(DTYPES[entry.dtype]).newbyteorder("<")
        count = int(np.prod(entry.shape)) if entry.shape else 1
        if entry.size != count * dtype.itemsize or entry.offset + entry.size > len(data):
            raise ValueError(f"{name}: {entry.size} bytes at {entry.offset} do not hold "
                             f"shape {entry.shape}")
        raw = np.frombuffer(data, dtype=dtype, count=count, offset=entry.offset)
        tensors[name] = raw.reshape(entry.shape).astype(dtype.newbyteorder("="))
    return tensors
