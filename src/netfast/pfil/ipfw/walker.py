"""The scalar matcher: the rule walk generated as Python code (the ``ip_fw2.c`` loop's job).

Per direction and protocol, the rules that can match are compiled on first use into one
generated Python function of ``if`` tests (only the conditions each rule has, in rule order,
constants inlined), which returns the first matching rule at or after a start index; count and
skipto continue from there (:meth:`netfast.pfil.ipfw.ruleset.Ruleset.evaluate`).

A walker returns the index of the first rule at or after ``start`` matching a packet; it is the
only scalar matcher in the product (by measurement the fastest: ``tests/pfil/oracles.py`` gives
the figures, and keeps the reference that tests every rule in turn, which the differential
tests compare it with).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from netfast.pfil import PfilPacket
from netfast.pfil.ipfw.compile import (
    _ADDR_ANY,
    _ADDR_ME,
    _ADDR_TABLE,
    _DIR_OUT,
    _AddrMatch,
    _Compiled,
)
from netfast.pfil.ipfw.rules import (
    PortRanges,
)

# -- the scalar walk, generated ------------------------------------------------------------------

# A walker returns the index of the first rule at or after ``start`` that matches a packet.  The
# generated ones exist per (direction, protocol): they hold only the rules that direction and
# protocol can match, each as one ``if`` over just the conditions the rule has, with its
# constants inlined (numbers only; sets and table lookups are names bound in the namespace).
Walker = Callable[[PfilPacket, int], int]

_PKT_FIELDS = {
    "src": "src",
    "dst": "dst",
    "sport": "sport",
    "dport": "dport",
    "ifx": "ifindex",
    "flags": "tcp_flags",
    "itype": "icmp_type",
    "ttl": "ttl",
    "frag": "fragment",
}


class _WalkerSource:
    """Builds a walker's source: conditions as Python expressions over the packet's fields."""

    def __init__(self) -> None:
        self.consts: dict[str, object] = {}
        self.fields: set[str] = set()

    def const(self, value: object) -> str:
        name = f"_k{len(self.consts)}"
        self.consts[name] = value
        return name

    def use(self, var: str) -> str:
        self.fields.add(var)
        return var

    def addr(self, var: str, match: _AddrMatch) -> str:
        self.use(var)
        if match.kind == _ADDR_ANY:
            hit = "True"
        elif match.kind == _ADDR_ME:
            hit = f"{var} in {self.const(match.me)}"
        elif match.kind == _ADDR_TABLE:
            assert match.table is not None
            hit = f"{self.const(match.table.lookup)}({var}) >= 0"
        else:
            terms = [
                f"{var} == {value}" if mask == 0xFFFFFFFF else f"({var} & {mask}) == {value}"
                for mask, value in match.nets
            ]
            terms += [f"{lo} <= {var} <= {hi}" for lo, hi in match.ranges]
            hit = " or ".join(terms) if terms else "False"
        return f"not ({hit})" if match.negate else f"({hit})"

    def ports(self, var: str, ranges: PortRanges) -> str:
        self.use(var)
        if len(ranges) > 2 and all(lo == hi for lo, hi in ranges):
            return f"{var} in {self.const(frozenset(lo for lo, _ in ranges))}"
        terms = [f"{var} == {lo}" if lo == hi else f"{lo} <= {var} <= {hi}" for lo, hi in ranges]
        return f"({var} >= 0 and ({' or '.join(terms)}))"

    def conditions(self, c: _Compiled, direction: int) -> list[str] | None:
        """The tests of ``c`` beyond its protocol, most selective first; None: it cannot match
        at ``direction``."""
        if c.direction >= 0 and direction != c.direction:
            return None
        if c.recv is not None and direction == _DIR_OUT:
            return None
        if c.xmit is not None and direction != _DIR_OUT:
            return None
        tests = []
        if c.dport is not None:
            tests.append(self.ports("dport", c.dport))
        if c.sport is not None:
            tests.append(self.ports("sport", c.sport))
        for var, match in (("dst", c.dst), ("src", c.src)):
            if match is not None and match.kind != _ADDR_TABLE:
                tests.append(self.addr(var, match))
        if c.flags_set or c.flags_clear or c.flags_any:
            self.use("flags")
            parts = ["flags >= 0"]
            if c.flags_set:
                parts.append(f"(flags & {c.flags_set}) == {c.flags_set}")
            if c.flags_clear:
                parts.append(f"not flags & {c.flags_clear}")
            if c.flags_any:
                parts.append(f"flags & {c.flags_any}")
            tests.append("(" + " and ".join(parts) + ")")
        if c.icmptypes is not None:
            tests.append(f"{self.use('itype')} in {self.const(c.icmptypes)}")
        if c.ttl_lo >= 0:
            tests.append(f"{c.ttl_lo} <= {self.use('ttl')} <= {c.ttl_hi}")
        for value in (c.recv, c.xmit, c.via):
            if value is not None:
                tests.append(f"{self.use('ifx')} == {value}")
        if c.frag:
            tests.append(self.use("frag"))
        for var, match in (("dst", c.dst), ("src", c.src)):
            if match is not None and match.kind == _ADDR_TABLE:
                tests.append(self.addr(var, match))
        return tests


def _build_walkers(
    compiled: Sequence[_Compiled], direction: int, proto: int
) -> tuple[Walker, Walker]:
    """The walkers for packets of ``proto`` at ``direction``: one for ``start == 0`` (no start
    test) and one for any ``start``."""
    src = _WalkerSource()
    body_first: list[str] = []
    body_after: list[str] = []
    for c in compiled:
        if c.proto >= 0 and c.proto != proto:
            continue
        tests = src.conditions(c, direction)
        if tests is None:
            continue
        i = c.index
        if not tests:
            body_first.append(f"    return {i}")
            body_after.append(f"    if start <= {i}:\n        return {i}")
            continue
        cond = " and ".join(tests)
        body_first.append(f"    if {cond}:\n        return {i}")
        body_after.append(f"    if start <= {i} and {cond}:\n        return {i}")
    loads = [f"    {var} = pkt.{_PKT_FIELDS[var]}" for var in sorted(src.fields)]
    text = "\n".join(
        ["def first(pkt, start):", *loads, *_until_return(body_first), "",
         "def after(pkt, start):", *loads, *body_after,
         f"    return {len(compiled) - 1}"]
    )  # fmt: skip
    namespace: dict[str, Any] = dict(src.consts)
    code = compile(text, f"<ipfw walker dir={direction} proto={proto}>", "exec")
    exec(code, namespace)
    return namespace["first"], namespace["after"]


def _until_return(body: list[str]) -> list[str]:
    """``body`` up to its first unconditional return (the rest is dead code)."""
    for j, line in enumerate(body):
        if line.startswith("    return"):
            return body[: j + 1]
    return body
