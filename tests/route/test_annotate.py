"""The annotate kernels against a per-line Python reference (ipaddress + reference LPM)."""

from __future__ import annotations

import ipaddress

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from netfast.route.annotate import Annotator
from netfast.route.rib import NO_ROUTE, Rib, format_prefix, prefix_mask


def _rib() -> Rib:
    rib = Rib()
    for text, value in [("10.0.0.0/8", "a"), ("10.1.0.0/16", "b"), ("10.1.2.0/24", "c"),
                        ("192.0.2.0/24", "d"), ("192.0.2.128/25", "e")]:  # fmt: skip
        net, plen = ipaddress.ip_network(text).network_address, ipaddress.ip_network(text).prefixlen
        rib.add(int(net), plen, value)
    return rib


def _reference(rib: Rib, data: bytes) -> tuple[bytes, list[int]]:
    out = []
    invalid = []
    for i, raw in enumerate(data.split(b"\n")[: data.count(b"\n") + (not data.endswith(b"\n"))]):
        text = raw.strip(b" \t\r")
        if not text or text.startswith(b"#"):
            continue
        try:
            addr = int(ipaddress.IPv4Address(text.decode("ascii")))
        except (ValueError, UnicodeDecodeError):
            invalid.append(i)
            out.append(text + b"\tinvalid\t-")
            continue
        rid = rib.reference_lookup(addr)
        if rid == NO_ROUTE:
            out.append(text + b"\t-\t-")
        else:
            net, plen = rib.prefix_of(rid)
            out.append(text + f"\t{format_prefix(net, plen)}\t{rib.value_of(rid)}".encode())
    return b"".join(line + b"\n" for line in out), invalid


def _lookup(rib: Rib):  # type: ignore[no-untyped-def]
    return lambda addrs: np.array([rib.reference_lookup(int(a)) for a in addrs], np.int32)


addresses = st.integers(0, 2**32 - 1).map(lambda a: str(ipaddress.IPv4Address(a)))
near = st.integers(0, 255).map(lambda x: f"10.1.{x}.{x}")
garbage = st.sampled_from(["", "#x", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1..2.3",
                           "a.b.c.d", " 10.1.2.3 ", "10.1.2.3\r", "1.2.3.4x", "\t", "9999.1.1.1",
                           "0.0.0.0", "255.255.255.255", "1.2.3.-4", "\u0661.2.3.4"])  # fmt: skip


@given(st.lists(st.one_of(addresses, near, garbage), max_size=60), st.booleans())
def test_block_matches_reference(lines: list[str], trailing_newline: bool) -> None:
    rib = _rib()
    data = "\n".join(lines).encode() + (b"\n" if trailing_newline and lines else b"")
    expected, invalid = _reference(rib, data)
    result = Annotator(_lookup(rib), rib, skip_bad=True).block(data)
    assert result.output == expected
    assert result.invalid_lines.tolist() == invalid


@given(st.lists(st.one_of(addresses, near), min_size=1, max_size=20), st.integers(0, 19))
def test_strict_mode_stops_before_first_bad_line(lines: list[str], bad_at: int) -> None:
    rib = _rib()
    bad_at %= len(lines) + 1
    lines = [*lines[:bad_at], "1.2.3.999", *lines[bad_at:]]
    data = "\n".join(lines).encode()
    result = Annotator(_lookup(rib), rib, skip_bad=False).block(data)
    assert result.invalid_lines.tolist()[0] == bad_at
    assert result.output.count(b"\n") == bad_at  # everything before it, nothing after


def test_matches_every_prefix_edge() -> None:
    rib = _rib()
    addrs = []
    for net, plen, _ in rib.items():
        addrs += [net, (net | ~prefix_mask(plen)) & 0xFFFFFFFF, (net - 1) & 0xFFFFFFFF]
    data = "".join(f"{ipaddress.IPv4Address(a)}\n" for a in addrs).encode()
    expected, _ = _reference(rib, data)
    assert Annotator(_lookup(rib), rib).block(data).output == expected
