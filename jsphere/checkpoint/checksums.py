"""Checksums of saved arrays, recorded with each checkpoint and verified when it is read back.

The checksum of an array is a function of its values alone, whatever devices or processes hold it: a class-sharded
head saved by four processes verifies when one process reads it whole. The array's bytes, as 32-bit words in
C order (narrower elements widened to one word each, wider ones split into several), are summed in two lanes,
modulo 2**32, each word ``v`` at flat position ``n`` weighted ``M[n mod 2**16] * C[n div 2**16]``, where ``M`` and
``C`` are fixed tables of odd numbers (the murmur3 finaliser of the position). An odd weight is invertible modulo
2**32, so any change of a single word changes both lanes; two lanes with unrelated weights let a random corruption
of many words go unnoticed with a probability of about 2**-64. Each process sums the shards it holds (one replica
of each) and the processes add their sums. This guards against damaged files (flipped bits, overwritten blocks,
truncation), not against deliberate tampering. Recorded as ``"<dtype>[<shape>]:<16 hex digits>"``.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

ALGORITHM = "jsphere-wsum32x2-v1"
_BLOCK = 1 << 16
_MASK = 0xFFFFFFFF


def _fmix32(x: np.ndarray) -> np.ndarray:
    """murmur3's 32-bit finaliser (uint32 in, uint32 out; arithmetic wraps modulo 2**32)."""
    x = x.astype(np.uint64)
    x ^= x >> 16
    x = (x * 0x85EBCA6B) & _MASK
    x ^= x >> 13
    x = (x * 0xC2B2AE35) & _MASK
    x ^= x >> 16
    return x.astype(np.uint32)


@functools.cache
def _position_weights(lane: int) -> np.ndarray:
    """Odd weights of the positions inside a block, for one lane."""
    return _fmix32((np.arange(_BLOCK, dtype=np.uint64) + lane * 0x9E3779B9) & _MASK) | np.uint32(1)


def _block_weight(lane: int, block: int) -> int:
    """Odd weight of a whole block, for one lane."""
    return int(_fmix32(np.asarray([(2 * block + 1 + lane * 0x7F4A7C15) & _MASK]))[0]) | 1


def _words(data: np.ndarray) -> tuple[np.ndarray, int]:
    """The array as 32-bit words in C order, and the number of words per element."""
    data = np.ascontiguousarray(data)
    size = data.dtype.itemsize
    if data.dtype.kind in "OUS" or size not in (1, 2, 4, 8, 16):
        raise TypeError(f"cannot checksum an array of dtype {data.dtype}")
    if size < 4:
        return data.view(np.uint8 if size == 1 else np.uint16).reshape(-1).astype(np.uint32), 1
    return data.view(np.uint32).reshape(-1), size // 4


def _sum_run(words: np.ndarray, start: int, lanes: list[int]) -> None:
    """Add the weighted sums of ``words``, which sit at flat word positions ``start, start + 1, ...``."""
    position, end = start, start + words.size
    scratch = np.empty(min(_BLOCK, words.size), np.uint32)
    while position < end:
        block, offset = divmod(position, _BLOCK)
        n = min(_BLOCK - offset, end - position)
        chunk = words[position - start:position - start + n]
        for lane in range(2):
            np.multiply(_position_weights(lane)[offset:offset + n], chunk, out=scratch[:n])
            lanes[lane] = (lanes[lane] + _block_weight(lane, block) * int(scratch[:n].sum(dtype=np.uint32))) & _MASK
        position += n


def _sum_shard(data: np.ndarray, index: tuple[slice, ...], shape: tuple[int, ...], lanes: list[int]) -> None:
    """Add the sums of one shard (``index``: its slices of the global ``shape``): the shard is cut into runs
    that are contiguous in the global C order (one run when it is split along its first axis only)."""
    words, per_element = _words(data)
    bounds = [s.indices(n)[:2] for s, n in zip(index, shape, strict=True)]
    partial = [d for d, (a, b) in enumerate(bounds) if b - a != shape[d]]
    last = partial[-1] if partial else 0
    strides = [int(np.prod(shape[d + 1:], dtype=np.int64)) for d in range(len(shape))]
    run = int(np.prod(data.shape[last:], dtype=np.int64)) * per_element
    for i, lead in enumerate(np.ndindex(*data.shape[:last])):
        first = sum((bounds[d][0] + m) * strides[d] for d, m in enumerate(lead))
        first += (bounds[last][0] * strides[last]) if shape else 0
        _sum_run(words[i * run:(i + 1) * run], first * per_element, lanes)


def _local_sums(x: Any) -> tuple[list[int], bool, str]:
    """This process's lane sums of ``x``, whether other processes hold parts of it, and its dtype[shape]."""
    lanes = [0, 0]
    if not isinstance(x, jax.Array):
        data = np.asarray(x)
        _sum_shard(data, tuple(slice(None) for _ in data.shape), data.shape, lanes)
        return lanes, False, _describe(data)
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    if x.is_fully_replicated:
        shards, spread = x.addressable_shards[:1], False
    else:
        shards, spread = [s for s in x.addressable_shards if s.replica_id == 0], not x.is_fully_addressable
    for shard in shards:
        _sum_shard(np.asarray(shard.data), shard.index, x.shape, lanes)
    return lanes, spread, _describe(x)


def _describe(x: Any) -> str:
    return f"{np.dtype(x.dtype)}[{','.join(str(n) for n in x.shape)}]"


def leaf_key(path: tuple) -> str:
    """The checksum key of a tree path: its dict keys, indices and attribute names joined by '/'."""
    parts = []
    for entry in path:
        for attribute in ("key", "idx", "name"):
            if hasattr(entry, attribute):
                parts.append(str(getattr(entry, attribute)))
                break
    return "/".join(parts)


def tree_checksums(tree: Any) -> dict[str, str]:
    """``{'path/to/leaf': '<dtype>[<shape>]:<checksum>'}`` for every array of ``tree`` (numpy or jax, any
    sharding). Several processes: every process must call it on the same tree (the sums of an array that no
    process holds whole are added across processes)."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    sums, spread, described = zip(*(_local_sums(leaf) for _, leaf in leaves), strict=True) if leaves else ((), (), ())
    sums = [list(lanes) for lanes in sums]
    if any(spread) and jax.process_count() > 1:
        total = np.sum(multihost_utils.process_allgather(np.asarray(sums, np.int64)), axis=0)
        sums = [[int(v) & _MASK for v in total[i]] if spread[i] else sums[i] for i in range(len(sums))]
    return {leaf_key(path): f"{what}:{a:08x}{b:08x}"
            for (path, _), (a, b), what in zip(leaves, sums, described, strict=True)}


def recorded_dtype(entry: str) -> str:
    """The dtype name of a recorded checksum entry."""
    return entry.split("[", 1)[0]


def mismatches(tree: Any, expected: dict[str, str]) -> list[str]:
    """The arrays of ``tree`` that do not match ``expected`` (or that ``expected`` lacks), described."""
    problems = []
    for key, actual in tree_checksums(tree).items():
        want = expected.get(key)
        if want is None:
            problems.append(f"{key} has no recorded checksum")
        elif want.split(":")[0] != actual.split(":")[0]:
            problems.append(f"{key} was saved as {want.split(':')[0]} but reads as {actual.split(':')[0]}")
        elif want != actual:
            problems.append(f"{key} does not match its checksum")
    return problems
