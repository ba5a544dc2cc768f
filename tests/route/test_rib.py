"""The RIB and its reference lookup against pytricia."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netfast.route.rib import NO_ROUTE, Rib, format_prefix, parse_prefix, prefix_mask


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("10.0.0.0", "no '/len'"),
        ("10.0.0/8", "dotted-quad"),
        ("10.0.0.256/32", "above 255"),
        ("10.0.0.0/33", "0..32"),
        ("10.0.0.1/24", "host bits"),
        ("a.b.c.d/8", "dotted-quad"),
    ],
)
def test_parse_prefix_rejects(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_prefix(text)


@given(st.integers(0, 2**32 - 1), st.integers(0, 32))
def test_prefix_round_trip(addr: int, plen: int) -> None:
    net = addr & prefix_mask(plen)
    assert parse_prefix(format_prefix(net, plen)) == (net, plen)


def test_add_replace_delete_keep_rids() -> None:
    rib = Rib(capacity=2)
    a, created = rib.add(0x0A000000, 8, "x")
    assert created
    b, _ = rib.add(0x0A010000, 16, "y")
    c, _ = rib.add(0, 0, "default")  # grows the arrays
    assert rib.add(0x0A000000, 8, "z") == (a, False)
    assert rib.value_of(a) == "z"
    assert rib.reference_lookup(0x0A010203) == b
    assert rib.delete(0x0A010000, 16) == b
    assert rib.reference_lookup(0x0A010203) == a  # the shorter match shows again
    assert rib.prefix_of(b) == (0x0A010000, 16)  # a deleted rid keeps naming its route
    assert rib.delete(0x0A010000, 16) is None
    assert rib.reference_lookup(0x0B000000) == c
    rib.delete(0, 0)
    assert rib.reference_lookup(0x0B000000) == NO_ROUTE
    assert len(rib) == 1


@given(
    st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32)), max_size=60),
    st.lists(st.integers(0, 2**32 - 1), max_size=60),
)
def test_reference_agrees_with_pytricia(prefixes: list[tuple[int, int]], addrs: list[int]) -> None:
    import pytricia

    rib = Rib()
    pyt = pytricia.PyTricia(32)
    for addr, plen in prefixes:
        net = addr & prefix_mask(plen)
        rid, _ = rib.add(net, plen, None)
        pyt[format_prefix(net, plen)] = rid
    for addr in addrs + [net for net, _ in prefixes]:
        dotted = format_prefix(addr, 32).split("/")[0]
        assert rib.reference_lookup(addr) == pyt.get(dotted, NO_ROUTE)


@pytest.mark.parametrize(
    "text",
    ["1.2.3.0/²", "\u0661.2.3.0/24", "010.0.0.0/8", "1.2.3.0/024", "1.2.3.0/+4", "1.2.3.0/ 4"],
)
def test_parse_prefix_takes_ascii_digits_without_leading_zeros(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_prefix(text)
    assert "invalid literal" not in str(info.value)
