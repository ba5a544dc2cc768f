"""Dynamic state (``ip_fw_dynamic.c``): flow keys, their hash and the state lifetimes.

Both directions of a flow have one key: the protocol and the flow's two ends, lower first, each
``address << 16 | port`` (ports only for TCP and UDP, :func:`_flow_ports`).  :func:`_key_hash`
is the key's 64-bit hash; :mod:`netfast.pfil.ipfw.states` (the table) computes the same in
compiled code from the same constants.  :class:`StateTimeouts` holds the lifetimes (see
:mod:`netfast.pfil.ipfw`).
"""

from __future__ import annotations

from dataclasses import dataclass

# -- dynamic state -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StateTimeouts:
    """Lifetimes of dynamic states in seconds, renewed by every packet of the flow."""

    tcp_established: float = 300.0
    tcp_opening: float = 60.0
    other: float = 60.0


_M64 = (1 << 64) - 1
_K1, _K2, _K3 = 0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9

#: (protocol, lower address, its port, higher address, its port), as :class:`StateTable` lists.
StateKey = tuple[int, int, int, int, int]


def _flow_ports(proto: int, sport: int, dport: int) -> tuple[int, int]:
    if proto in (6, 17) and sport >= 0 and dport >= 0:
        return sport, dport
    return 0, 0


def _key_hash(proto: int, lo: int, hi: int) -> int:
    """The hash of the key (proto, lo, hi): ends as ``address << 16 | port``, ``lo <= hi``."""
    return ((lo * _K1) & _M64) ^ ((hi * _K2) & _M64) ^ ((proto * _K3) & _M64)
