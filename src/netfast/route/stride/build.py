"""The vectorized bulk build from a RIB, and the sorted variant's bitmap headers."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from netfast.route.rib import Rib
from netfast.route.stride.layout import (
    _BITS_SHIFT,
    _CLASSES,
    _DEFAULT_SLOT,
    _ML_SHIFT,
    _RESERVED,
    _ROOT,
    _URID,
    MAX_BUCKETS,
    MAX_RID,
)


def bulk_build(
    rib: Rib, pool: npt.NDArray[np.uint64], header: int
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64], npt.NDArray[np.int64], int, int]:
    """The arrays of a table holding the RIB's live routes, built from the fresh ``pool`` (its
    reserved words are kept) with ``header`` words before each bucket's entries: (pool, bucket
    table, per-bucket allocation sizes, pool top, bucket top).  No per-route Python work."""
    net, plen, rid = rib.live_arrays()
    if rid.size and int(rid.max()) > MAX_RID:
        raise ValueError(f"route id {int(rid.max())} does not fit in 26 bits")
    dflt = rid[plen == 0]
    if dflt.size:
        pool[_DEFAULT_SLOT] = np.uint64(int(dflt[-1]) + 1)
    keep = plen > 0
    net64 = net[keep].astype(np.uint64)
    plen64 = plen[keep].astype(np.int64)
    rid1 = rid[keep].astype(np.uint64) + np.uint64(1)
    level = (plen64 - 1) // 8
    ml = (plen64 - 8 * level).astype(np.uint64)
    byte = (net64 >> (24 - 8 * level).astype(np.uint64)) & np.uint64(0xFF)
    # a bucket is named by (level, the 8*level address bits above it)
    bkey = (level.astype(np.uint64) << np.uint64(32)) | (
        net64 >> (32 - 8 * level).astype(np.uint64)
    )
    bkey[level == 0] = 0
    # every bucket's ancestors must exist
    keys = [np.unique(bkey[level == lv]) for lv in range(4)]
    for lv in range(3, 1, -1):
        parents = ((keys[lv] & np.uint64(0xFFFFFFFF)) >> np.uint64(8)) | np.uint64((lv - 1) << 32)
        keys[lv - 1] = np.union1d(keys[lv - 1], parents)
    keys[0] = np.zeros(1, np.uint64)  # the root always exists
    all_keys = np.concatenate(keys)  # sorted: level-major, then address
    nb = all_keys.size
    bucket_of_route = np.searchsorted(all_keys, bkey).astype(np.int64) + _ROOT
    # link entries: each non-root bucket hangs off its parent's full-8-bit entry
    child_keys = all_keys[1:]
    child_level = child_keys >> np.uint64(32)
    child_top = child_keys & np.uint64(0xFFFFFFFF)
    parent_keys = ((child_level - np.uint64(1)) << np.uint64(32)) | (child_top >> np.uint64(8))
    parent_keys[child_level == 1] = 0
    link_bucket = np.searchsorted(all_keys, parent_keys).astype(np.int64) + _ROOT
    link_ids = np.arange(_ROOT + 1, _ROOT + nb, dtype=np.uint64)
    route_words = (byte << np.uint64(_BITS_SHIFT)) | (ml << np.uint64(_ML_SHIFT)) | (rid1 << _URID)
    link_words = (
        ((child_top & np.uint64(0xFF)) << np.uint64(_BITS_SHIFT))
        | (np.uint64(8) << np.uint64(_ML_SHIFT))
        | link_ids
    )
    words = np.concatenate([route_words, link_words])
    owner = np.concatenate([bucket_of_route, link_bucket])
    if nb + _ROOT >= MAX_BUCKETS:
        raise ValueError("too many buckets for 26-bit child ids")
    # sort by (bucket, masklen, bits) and merge a route /8k with the link at the same key
    wml = (words >> np.uint64(_ML_SHIFT)) & np.uint64(0xF)
    wbits = words >> np.uint64(_BITS_SHIFT)
    pos = (np.uint64(1) << wml) - np.uint64(2) + (wbits >> (np.uint64(8) - wml))
    sort_key = (owner.astype(np.uint64) << np.uint64(10)) | pos
    order = np.argsort(sort_key, kind="stable")
    sort_key = sort_key[order]
    words = words[order]
    if words.size:
        starts = np.flatnonzero(np.r_[True, sort_key[1:] != sort_key[:-1]])
        words = np.bitwise_or.reduceat(words, starts)
        sort_key = sort_key[starts]
    owner = (sort_key >> np.uint64(10)).astype(np.int64)
    pos = sort_key & np.uint64(1023)
    counts = np.bincount(owner, minlength=_ROOT + nb)[_ROOT:]
    caps = _CLASSES[np.searchsorted(_CLASSES, np.maximum(counts, 1))]
    sizes = caps + header
    offs = _RESERVED + np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    used = _RESERVED + int(sizes.sum())
    pool_len = used + used // 8 + 1024
    new_pool = np.zeros(pool_len, np.uint64)
    new_pool[:_RESERVED] = pool[:_RESERVED]
    first = np.searchsorted(owner, owner)  # index of the bucket's first entry
    rank = np.arange(owner.size) - first
    slot = offs[owner - _ROOT] + header + rank
    new_pool[slot] = words
    if header:
        build_headers(new_pool, offs, owner - _ROOT, pos, nb)
    buckets = np.zeros(_ROOT + nb + nb // 8 + 64, np.uint64)
    buckets[_ROOT : _ROOT + nb] = (
        (caps.astype(np.uint64) << np.uint64(48))
        | (counts.astype(np.uint64) << np.uint64(32))
        | offs.astype(np.uint64)
    )
    bucket_sizes = np.zeros(buckets.size, np.int64)
    bucket_sizes[_ROOT : _ROOT + nb] = sizes
    return new_pool, buckets, bucket_sizes, used, _ROOT + nb


def build_headers(
    pool: npt.NDArray[np.uint64],
    offs: npt.NDArray[np.int64],
    bucket: npt.NDArray[np.int64],
    pos: npt.NDArray[np.uint64],
    nb: int,
) -> None:
    """Write the sorted variant's bitmap and cumulative-popcount header of each bucket
    at ``offs``, given its entries' bucket index and (masklen, bits) position."""
    word = (pos >> np.uint64(6)).astype(np.int64)
    bitmaps = np.zeros((nb, 8), np.uint64)
    np.bitwise_or.at(bitmaps, (bucket, word), np.uint64(1) << (pos & np.uint64(63)))
    per_word = np.bincount(bucket * 8 + word, minlength=nb * 8).reshape(nb, 8)
    cum = (np.cumsum(per_word, axis=1) - per_word).astype(np.uint64)  # exclusive
    shifts = (np.uint64(16) * (np.arange(4, dtype=np.uint64)))[None, :]
    lo = np.bitwise_or.reduce(cum[:, :4] << shifts, axis=1)
    hi = np.bitwise_or.reduce(cum[:, 4:] << shifts, axis=1)
    rows = offs[:, None] + np.arange(8)[None, :]
    pool[rows] = bitmaps
    pool[offs + 8] = lo
    pool[offs + 9] = hi
