"""Generated routing tables for the FIB tests: prefixes that nest and collide (near a few
anchors, /0 and /32 included), and the addresses that probe a prefix's edges."""

from __future__ import annotations

from hypothesis import strategies as st

from netfast.route.rib import prefix_mask

_ANCHORS = [0x00000000, 0x0A000000, 0x0A010200, 0x80000000, 0xC0A80100, 0xFFFFFFFF]


@st.composite
def prefixes(draw: st.DrawFn) -> tuple[int, int]:
    anchor = draw(st.sampled_from(_ANCHORS) | st.integers(0, 2**32 - 1))
    noise = draw(st.integers(0, 2**32 - 1)) >> draw(st.integers(0, 32))
    plen = draw(st.sampled_from([0, 8, 16, 24, 31, 32]) | st.integers(0, 32))
    return (anchor ^ noise) & prefix_mask(plen), plen


def probes(touched: set[tuple[int, int]], extra: list[int]) -> list[int]:
    """Addresses at and just outside the edges of every prefix, plus ``extra``."""
    out = [0, 2**32 - 1, *extra]
    for net, plen in touched:
        last = net | (~prefix_mask(plen) & 0xFFFFFFFF)
        out += [net, last, (net - 1) % 2**32, (last + 1) % 2**32]
    return out
