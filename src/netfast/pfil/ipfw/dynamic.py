"""Dynamic state (``ip_fw_dynamic.c``): flow keys, their hashes and the state lifetimes.

:func:`_state_key` gives both directions of a flow the same key (ports only for TCP and UDP);
:func:`_key_hash` and its batch twin :func:`_vkey_hash` give the same 64-bit hash of a key, so
the batch path can test a whole batch against the table's hashes before looking rows up one by
one.  :class:`StateTimeouts` holds the lifetimes (see :mod:`netfast.pfil.ipfw`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# -- dynamic state -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StateTimeouts:
    """Lifetimes of dynamic states in seconds, renewed by every packet of the flow."""

    tcp_established: float = 300.0
    tcp_opening: float = 60.0
    other: float = 60.0


class _State:
    __slots__ = ("expire", "origin", "replied", "rule", "tcp")

    def __init__(self, rule: int, expire: float, origin: tuple[int, int], tcp: bool) -> None:
        self.rule = rule
        self.expire = expire
        self.origin = origin  # (src, sport) of the packet that created it
        self.replied = False
        self.tcp = tcp


_M64 = (1 << 64) - 1
_K1, _K2, _K3 = 0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9

StateKey = tuple[int, int, int, int, int]


def _flow_ports(proto: int, sport: int, dport: int) -> tuple[int, int]:
    if proto in (6, 17) and sport >= 0 and dport >= 0:
        return sport, dport
    return 0, 0


def _state_key(proto: int, src: int, sport: int, dst: int, dport: int) -> StateKey:
    """The same key for both directions of a flow."""
    sport, dport = _flow_ports(proto, sport, dport)
    a, b = (src << 16) | sport, (dst << 16) | dport
    lo, hi = (a, b) if a <= b else (b, a)
    return (proto, lo >> 16, lo & 0xFFFF, hi >> 16, hi & 0xFFFF)


def _key_hash(key: StateKey) -> int:
    proto, la, lp, ha, hp = key
    lo, hi = (la << 16) | lp, (ha << 16) | hp
    return ((lo * _K1) & _M64) ^ ((hi * _K2) & _M64) ^ ((proto * _K3) & _M64)


def _vkey_hash(cols: Mapping[str, npt.NDArray[np.integer]]) -> npt.NDArray[np.uint64]:
    proto = cols["proto"].astype(np.uint64)
    sport, dport = cols["sport"], cols["dport"]
    ported = ((proto == 6) | (proto == 17)) & (sport >= 0) & (dport >= 0)
    sp = np.where(ported, sport, 0).astype(np.uint64)
    dp = np.where(ported, dport, 0).astype(np.uint64)
    a = (cols["src"].astype(np.uint64) << np.uint64(16)) | sp
    b = (cols["dst"].astype(np.uint64) << np.uint64(16)) | dp
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    return (lo * np.uint64(_K1)) ^ (hi * np.uint64(_K2)) ^ (proto * np.uint64(_K3))
