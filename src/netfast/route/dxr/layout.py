"""The DXR table layout's constants and the array aliases the dxr modules share.

A direct entry below ``0x80000000`` is a rid (``RID_NONE``: no route); bit 31 alone marks a
bitmap chunk (block number in bits 0..29), bits 31 and 30 a long chunk (pool offset in bits
0..29).  See :mod:`netfast.route.dxr` for the structure.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

RID_NONE = 0xFFFFFF
"""The 24-bit rid stored for "no route"; rids must be below it."""

MAX_RID = RID_NONE - 1
_SHORT_FLAG = 0x80000000  # bitmap chunk
_LONG_FLAGS = 0xC0000000
_MAX_POOL_WORDS = 1 << 22  # the short-format offset field is 22 bits wide

U32 = npt.NDArray[np.uint32]
U8 = npt.NDArray[np.uint8]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
