"""The packed entry and descriptor words, the uint64 constants the kernels use, the pool's
reserved region and the bucket size classes."""

from __future__ import annotations

import numpy as np

_BITS_SHIFT = 56
_ML_SHIFT = 52
_RID_SHIFT = 26
_FIELD_MASK = (1 << 26) - 1
MAX_RID = _FIELD_MASK - 1  # rid + 1 must fit in 26 bits
MAX_BUCKETS = _FIELD_MASK

# kernel constants are typed so that numba never mixes uint64 with int64 (which gives float64)
_U8 = np.uint64(8)
_U0xFF = np.uint64(0xFF)
_U0xF = np.uint64(0xF)
_UBITS = np.uint64(_BITS_SHIFT)
_UML = np.uint64(_ML_SHIFT)
_URID = np.uint64(_RID_SHIFT)
_UFIELD = np.uint64(_FIELD_MASK)
_U32 = np.uint64(32)
_ULOW32 = np.uint64(0xFFFFFFFF)
_ULOW16 = np.uint64(0xFFFF)
_U16 = np.uint64(16)
_U63 = np.uint64(63)
_U6 = np.uint64(6)
_U1 = np.uint64(1)
_U2 = np.uint64(2)
_U3 = np.uint64(3)
_UZERO = np.uint64(0)

#: Written over freed storage in debug mode; masklen nibble 0xA is impossible in a live entry.
POISON = 0xDEADA11C0DEDF00D
_UPOISON = np.uint64(POISON)

_DEFAULT_SLOT = 0
_POISON_OFF = 1
_RESERVED = 16  # default word + a poisoned region at least as long as a bitmap header
_ROOT = 1
_FAST_HEADER = 10  # 8 bitmap words + 2 words of cumulative popcounts (4 x 16 bits each)

#: Bucket capacities (entries); a bucket holds at most 2 + 4 + ... + 256 = 510 entries.
_CLASSES = np.array(
    [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512], dtype=np.int64
)


def _size_class(count: int) -> int:
    return int(_CLASSES[int(np.searchsorted(_CLASSES, count))])


def _entry(bits: int, ml: int, rid1: int, child: int) -> int:
    return (bits << _BITS_SHIFT) | (ml << _ML_SHIFT) | (rid1 << _RID_SHIFT) | child


def _descriptor(off: int, count: int, cap: int) -> int:
    return (cap << 48) | (count << 32) | off
