"""The shared protocol facts (netfast.ip.facts): each compiled helper against its Python twin
over the inputs that matter, and the twins against independent definitions (RFC 1812 5.3.7's
address blocks, a full checksum recomputation, scapy-free byte slicing)."""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

import numba
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from netfast.ip.facts import (
    L4_ABSENT,
    LIMITED_BROADCAST,
    MARTIAN_DST_TOP,
    MARTIAN_SRC_TOP,
    l4_fields,
    martian_dst,
    martian_dst_mask,
    martian_src,
    nb_ipv4_header_sum,
    nb_martian_dst,
    nb_martian_src,
    nb_ttl_decrement_checksum,
)
from netfast.ip.vector_kernels import PFIL_COLUMNS, pfil_kernel
from netfast.wire.checksum import internet_checksum, ones_sum, update_ttl

addresses = st.one_of(
    st.integers(0, 0xFFFFFFFF),
    st.sampled_from([0, 0x00FFFFFF, 0x7F000001, 0xDFFFFFFF, 0xE0000000, 0xEFFFFFFF]),
    st.sampled_from([0xF0000000, 0xFFFFFFFE, 0xFFFFFFFF, 0x01000000, 0x7EFFFFFF, 0x80000000]),
)

_NETS_SRC = [ipaddress.ip_network(n) for n in ("0.0.0.0/8", "127.0.0.0/8", "224.0.0.0/3")]
_NETS_DST = [ipaddress.ip_network(n) for n in ("0.0.0.0/8", "127.0.0.0/8", "240.0.0.0/4")]


@given(addresses)
def test_martians_follow_rfc1812_blocks(addr: int) -> None:
    a = ipaddress.ip_address(addr)
    assert martian_src(addr) == any(a in n for n in _NETS_SRC)
    assert martian_dst(addr) == (any(a in n for n in _NETS_DST) and addr != 0xFFFFFFFF)


@given(addresses)
def test_martian_tables_equal_functions(addr: int) -> None:
    assert bool(MARTIAN_SRC_TOP[addr >> 24]) == martian_src(addr)
    assert bool(MARTIAN_DST_TOP[addr >> 24] and addr != LIMITED_BROADCAST) == martian_dst(addr)


@numba.njit(cache=True)
def _martians_compiled(addr: Any) -> tuple[bool, bool]:  # pragma: no cover - compiled
    return nb_martian_src(addr), nb_martian_dst(addr)


@given(addresses)
def test_compiled_martians_equal_python(addr: int) -> None:
    for typed in (np.uint32(addr), np.int64(addr)):
        assert _martians_compiled(typed) == (martian_src(addr), martian_dst(addr))


@given(st.lists(addresses, max_size=50))
def test_martian_dst_mask(addrs: list[int]) -> None:
    got = martian_dst_mask(np.array(addrs, np.uint32))
    assert got.tolist() == [martian_dst(a) for a in addrs]


@numba.njit(cache=True)
def _header_sum(a: Any, off: int) -> Any:  # pragma: no cover - compiled
    return nb_ipv4_header_sum(a, off)


@given(st.binary(min_size=20, max_size=40), st.integers(0, 20))
def test_header_sum_equals_ones_sum(data: bytes, off: int) -> None:
    off = min(off, len(data) - 20)
    arr = np.frombuffer(data, np.uint8)
    assert int(_header_sum(arr, off)) == ones_sum(data[off : off + 20])


@numba.njit(cache=True)
def _ttl(csum: Any, ttl: Any, proto: Any) -> Any:  # pragma: no cover - compiled
    return nb_ttl_decrement_checksum(csum, ttl, proto)


@given(st.integers(0, 0xFFFF), st.integers(1, 255), st.integers(0, 255))
def test_ttl_decrement_equals_update_ttl(csum: int, ttl: int, proto: int) -> None:
    want = update_ttl(csum, ttl, proto, ttl - 1)
    assert int(_ttl(np.uint32(csum), np.uint8(ttl), np.uint8(proto))) == want


@given(st.binary(min_size=20, max_size=20), st.integers(2, 255))
def test_ttl_decrement_matches_recomputation(header: bytes, ttl: int) -> None:
    h = bytearray(header)
    h[0] = 0x45  # a real header is never all zeros (RFC 1624's one exception)
    h[8] = ttl
    h[10:12] = b"\0\0"
    struct.pack_into(">H", h, 10, internet_checksum(h))
    new = int(_ttl(np.uint32(struct.unpack_from(">H", h, 10)[0]), np.uint8(ttl), np.uint8(h[9])))
    h[8] = ttl - 1
    h[10:12] = b"\0\0"
    assert new == internet_checksum(h)


@given(st.binary(max_size=40), st.sampled_from([0, 1, 6, 17, 47, 255]))
def test_pfil_kernel_transport_fields_equal_l4_fields(payload: bytes, proto: int) -> None:
    """The vector path's one compiled copy of the transport fields against the Python twin;
    the frame's slot goes on past the packet (link padding 0xa5) and must not be read."""
    packet = bytes([0x45]) + b"\0" * 8 + bytes([proto]) + b"\0" * 10 + payload
    frame = b"\0" * 14 + packet + b"\xa5" * 32
    data = np.frombuffer(frame, np.uint8).reshape(1, -1).copy()
    out = np.empty((len(PFIL_COLUMNS), 1), np.int64)
    pfil_kernel(data, np.zeros(1, np.intp), np.array([len(packet)], np.int64), out)
    got = tuple(int(out[PFIL_COLUMNS.index(c), 0]) for c in PFIL_COLUMNS[5:])
    assert PFIL_COLUMNS[5:] == ("sport", "dport", "tcp_flags", "icmp_type", "icmp_code")
    assert got == l4_fields(packet, 20, proto)


def test_l4_fields_values() -> None:
    tcp = struct.pack(">HHIIBB", 1234, 80, 0, 0, 0x50, 0x12) + b"\0" * 6
    assert l4_fields(b"\0" * 20 + tcp, 20, 6) == (1234, 80, 0x12, -1, -1)
    assert l4_fields(b"\0" * 20 + tcp[:13], 20, 6) == L4_ABSENT
    assert l4_fields(b"\0" * 20 + tcp[:4], 20, 17) == (1234, 80, -1, -1, -1)
    assert l4_fields(b"\0" * 20 + b"\x08\x00", 20, 1) == (-1, -1, -1, 8, 0)
    assert l4_fields(b"\0" * 20 + b"\x08", 20, 1) == L4_ABSENT
    assert l4_fields(b"\0" * 20 + tcp, 20, 47) == L4_ABSENT
