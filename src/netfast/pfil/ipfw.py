"""An ipfw-style firewall compiled to a pfil hook (the paper's "firewall packages" section).

Contract
--------
:func:`parse_rules` reads a rule file into a :class:`Ruleset`; the ruleset itself is the pfil hook
(``Callable[[PfilPacket], Verdict]``) and :meth:`Ruleset.evaluate_batch` is the same ruleset over
numpy columns of a whole batch for the vector path (docs/ROUTER.md).  Malformed input raises
:class:`FirewallError` naming file, rule, line, column, what was expected and what was found.

Language (one rule per line, ``#`` starts a comment)::

    [NUM] ACTION [log] PROTO from SRC [PORTS] to DST [PORTS] [OPTIONS...]
    table NAME add PREFIX [VALUE]

- ACTION: ``allow`` (``accept``, ``pass``, ``permit``), ``deny`` (``drop``), ``reset`` (a TCP
  RST back; plain deny for anything else), ``unreach CODE`` (``net``, ``host``, ``proto``,
  ``port``, ``net-prohib``, ``host-prohib``, ``filter-prohib`` or 0..15: an ICMP destination
  unreachable back), ``count`` (count and go on), ``skipto NUM`` (go on at the first rule
  numbered NUM or above; NUM must be above the rule's own number).
- PROTO: ``ip`` / ``all`` (any), ``tcp``, ``udp``, ``icmp`` or a protocol number.
- SRC / DST: ``any``, ``me`` (the addresses given as ``me``), ``A.B.C.D``, ``A.B.C.D/len``,
  ``A.B.C.D:mask`` (any mask, contiguous or not), ``A.B.C.D-E.F.G.H``, ``{ item, ... }``,
  ``table(NAME)`` (longest-prefix match in a named table), each optionally preceded by ``not``.
- PORTS (tcp and udp only): ``80``, ``1024-65535``, ``80,443,8000-8080`` or service names
  (:data:`SERVICES`).
- OPTIONS: ``in``, ``out``, ``via IF``, ``recv IF``, ``xmit IF``, ``tcpflags LIST`` (``syn``,
  ``!ack``, ... tcp only), ``setup`` (SYN without ACK), ``established`` (ACK or RST),
  ``icmptypes LIST`` (icmp only), ``ttl N`` / ``ttl N-M``, ``keep-state [limit N]``, ``frag``.

Lines end at ``"\n"`` only (a trailing ``"\r"`` is dropped; form feeds, NEL and other Unicode
separators stay inside their line, so line numbers are those of an editor).  Every number --
rule numbers, ports, codes, octets, lengths -- is ASCII digits (:mod:`netfast.textnum`); an
address octet with a leading zero (``010``) is refused, being octal to ``inet_aton``.

Rules without a number get the previous number + 100.  Numbers must increase strictly (so a
number names one rule and its counters) and lie in 1..65534; 65535 is the default rule, ``deny ip
from any to any`` unless ``default_allow`` (a file may restate it as its last line, which is how
:meth:`Ruleset.text` output reads back).

Semantics chosen where ipfw leaves room
--------------------------------------
- Direction: ``in`` matches only :attr:`Direction.IN`, ``out`` only :attr:`Direction.OUT`;
  :attr:`Direction.FORWARD` matches neither (rules without ``in``/``out`` match every head).
  ``recv IF`` matches a packet on interface IF at the IN and FORWARD heads (the packet's
  ``ifindex`` is the interface it came in on), ``xmit IF`` at the OUT head (the interface it goes
  out on), ``via IF`` at any head.  Interface names map to indexes through ``interfaces``; a name
  not in the map matches nothing.
- ``frag`` matches any fragment (``PfilPacket.fragment``); a fragment without a transport header
  never matches ports, TCP flags or ICMP types.
- Time: the ruleset is sans-IO.  ``ruleset.now`` (seconds) is set by the caller -- the router per
  batch, the CLI from capture timestamps -- and :meth:`Ruleset.evaluate` also takes ``now``.
- keep-state: a matching keep-state rule records a dynamic state for the packet's 5-tuple (both
  directions).  The check for states is implied at the start of the ruleset: a packet that
  belongs to a live state takes the action of the rule that created it, is counted on that rule
  and skips rule evaluation.  Lifetimes (:class:`StateTimeouts`): a TCP state lives 300 s after
  each packet once both directions have been seen, 60 s before; other protocols 60 s.  The table
  holds at most ``max_states`` entries: when full, expired entries are reclaimed, oldest expiry
  first; if none has expired the packet is dropped and counted (``ipfw.state.full``).  ``limit N``
  bounds the live states one rule may own (``ipfw.state.limit``).
- reset / unreach: the packet is dropped (:attr:`Verdict.DROP`) and the reply is put in
  ``pkt.replies``.  Replies follow RFC 793 (RST) and RFC 1812 4.3.2.7 (no ICMP error about an
  ICMP error, a non-first fragment, a multicast/broadcast destination or source).  The ICMP
  source address is ``reply_source`` when set (the router sets its own address), else the
  packet's destination.
- ``log`` appends a line to ``ruleset.log`` (bounded) when the rule matches.
- Scalar walk: per direction and protocol, the rules that can match are compiled on first use
  into one generated Python function of ``if`` tests (only the conditions each rule has, in
  rule order), which returns the first matching rule at or after a start index; count and
  skipto continue from there.  ``scalar_dispatch = False`` tests every rule in turn instead
  (the reference).
- Counters: per rule packets and bytes (IP total length), in :attr:`Ruleset.packets` and
  :attr:`Ruleset.bytes`; events that are not rule matches go to ``ruleset.stats``.  One thread
  evaluates a ruleset at a time (the router's packet loop); counters are not atomic.

Vector form
-----------
:meth:`Ruleset.evaluate_batch` runs the ruleset compiled into a table of integers (one row per
rule: action, protocol, direction and interface, flag masks, TTL range, and offsets into flat
arrays of address masks/ranges, port ranges and ICMP types) through a numba kernel that takes
the rules in order over the list of packets still undecided, each rule narrowing the list one
tested condition at a time to the packets it matches (first match wins: decided packets leave
the list; ``skipto`` moves a packet's position forward).  ``rule_major = False`` selects the
reference kernel walking the rules per packet as the scalar loop does.
``me`` and ``table(NAME)`` addresses are evaluated for the whole batch first (numpy set
membership, the table's ``lookup_batch``) and read by the kernel as columns.  Rules no packet
of the call can match (protocol absent, wrong direction) are left out of the walk first.  When
more than ``kernel_max_rules`` remain, the rules are evaluated instead as boolean masks over the
packets still undecided, in rule order (a ``skipto`` moves the matched packets' position
forward), which numpy does faster for long rulesets; both forms give the same verdicts and
counters.  Before the walk, as in the scalar path, the packets whose state-key hash is in the
state table are looked up in it one by one: a live state decides its packet as the scalar path
does (refresh, the creating rule's counters and verdict, ``ipfw.state.hit``).  It decides PASS
and DROP itself and answers PUNT (3) for anything that needs the scalar path: packets of an
expired state or of a state whose rule logs or sends a reply, and matches of ``keep-state``,
``log``, ``unreach`` and ``reset`` (of TCP) rules.  Counters are updated only for packets it
decides, exactly as the scalar path would have; the
scalar path counts the punted ones when it handles them.
"""

from __future__ import annotations

import enum
import heapq
import re
import struct
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from netfast.pfil import Direction, PfilPacket, Verdict
from netfast.route.rib import Rib, format_prefix, prefix_mask
from netfast.route.table import RoutingTable
from netfast.textnum import ascii_int, file_lines, has_leading_zero, parse_quad, shown
from netfast.wire.icmpv4 import DestUnreachableCode, Icmpv4DestUnreachable
from netfast.wire.ipv4 import IpProtocol, Ipv4Repr, ip_to_str
from netfast.wire.tcp import TcpFlags, TcpRepr

__all__ = [
    "Action",
    "AddrItem",
    "AddrSpec",
    "FirewallError",
    "Rule",
    "Ruleset",
    "SERVICES",
    "StateTimeouts",
    "VERDICT_DROP",
    "VERDICT_PASS",
    "VERDICT_PUNT",
    "parse_rule",
    "parse_rules",
    "load_rules",
    "read_rules",
]

DEFAULT_RULE = 65535
MAX_RULE = 65534
NUMBER_STEP = 100

#: evaluate_batch results (docs/ROUTER.md); 2 (CONSUMED) is never answered by the vector form.
VERDICT_PASS = 0
VERDICT_DROP = 1
VERDICT_PUNT = 3
_UNDECIDED = 255
#: Default of Ruleset.kernel_max_rules: the rule-major kernel beat the numpy masks at every
#: length measured (16k batches: 37 vs 62 ns/packet at 100 rules, 136 vs 230 at 400), so the
#: masks stay only as a selectable, tested second form.
KERNEL_MAX_RULES = 1 << 16

#: Service names accepted for ports (printed back as numbers).
SERVICES: dict[str, int] = {
    "ftp": 21,
    "ssh": 22,
    "telnet": 23,
    "smtp": 25,
    "domain": 53,
    "http": 80,
    "pop3": 110,
    "ntp": 123,
    "imap": 143,
    "snmp": 161,
    "bgp": 179,
    "ldap": 389,
    "https": 443,
    "syslog": 514,
    "submission": 587,
    "imaps": 993,
}

_PROTO_NAMES = {"tcp": 6, "udp": 17, "icmp": 1}
_PROTO_BY_NUMBER = {v: k for k, v in _PROTO_NAMES.items()}

_TCP_FLAG_NAMES: dict[str, int] = {
    "fin": TcpFlags.FIN,
    "syn": TcpFlags.SYN,
    "rst": TcpFlags.RST,
    "psh": TcpFlags.PSH,
    "ack": TcpFlags.ACK,
    "urg": TcpFlags.URG,
    "ece": TcpFlags.ECE,
    "cwr": TcpFlags.CWR,
}

_ICMP_TYPE_NAMES = {
    "echo-reply": 0,
    "dest-unreach": 3,
    "redirect": 5,
    "echo-request": 8,
    "time-exceeded": 11,
}

_UNREACH_NAMES = {
    "net": 0,
    "host": 1,
    "proto": 2,
    "port": 3,
    "net-prohib": 9,
    "host-prohib": 10,
    "filter-prohib": 13,
}
_UNREACH_BY_CODE = {v: k for k, v in _UNREACH_NAMES.items()}

# ICMP types that are errors (RFC 1812 4.3.2.7: never answered with an error).
_ICMP_ERRORS = frozenset({3, 4, 5, 11, 12})


class FirewallError(ValueError):
    """A malformed rule file: ``FILE: rule N (line L), column C: expected X, found 'Y'``.

    ``rule`` None names a ``table`` line; ``what`` replaces ``rule N`` / ``table`` (``""``:
    the line alone, for a file that is not text).  ``found`` is quoted cut to a bounded length
    with control characters escaped; ``found_text`` overrides its quoted form.
    """

    def __init__(
        self,
        filename: str,
        rule: int | None,
        line: int,
        column: int,
        expected: str,
        found: str,
        *,
        what: str | None = None,
        found_text: str | None = None,
    ) -> None:
        self.filename = filename
        self.rule = rule
        self.line = line
        self.column = column
        self.expected = expected
        self.found = found
        if what is None:
            what = f"rule {rule}" if rule is not None else "table"
        where = f"{what} (line {line})" if what else f"line {line}"
        if found_text is None:
            found_text = "end of line" if found == "" else f"'{shown(found)}'"
        super().__init__(
            f"{shown(filename, 200)}: {where}, column {column}: expected {expected}, "
            f"found {found_text}"
        )


class Action(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    RESET = "reset"
    UNREACH = "unreach"
    COUNT = "count"
    SKIPTO = "skipto"


_ACTION_WORDS = {
    "allow": Action.ALLOW,
    "accept": Action.ALLOW,
    "pass": Action.ALLOW,
    "permit": Action.ALLOW,
    "deny": Action.DENY,
    "drop": Action.DENY,
    "reset": Action.RESET,
    "unreach": Action.UNREACH,
    "count": Action.COUNT,
    "skipto": Action.SKIPTO,
}


# -- the rule as a value -------------------------------------------------------------------------


def _quad(addr: int) -> str:
    return ip_to_str(addr)


@dataclass(frozen=True, slots=True)
class AddrItem:
    """One address form: ``host`` (a), ``prefix`` (a = network, b = length), ``mask``
    (a = address & mask, b = mask) or ``range`` (a = low, b = high)."""

    kind: str
    a: int
    b: int = 0

    def __str__(self) -> str:
        if self.kind == "host":
            return _quad(self.a)
        if self.kind == "prefix":
            return format_prefix(self.a, self.b)
        if self.kind == "mask":
            return f"{_quad(self.a)}:{_quad(self.b)}"
        return f"{_quad(self.a)}-{_quad(self.b)}"


@dataclass(frozen=True, slots=True)
class AddrSpec:
    """A source or destination: ``any``, ``me``, ``table`` (``table`` names it) or ``list``
    (``items``), optionally negated."""

    kind: str = "any"
    items: tuple[AddrItem, ...] = ()
    table: str = ""
    negate: bool = False

    def __str__(self) -> str:
        if self.kind == "list":
            body = (
                str(self.items[0])
                if len(self.items) == 1
                else ("{ " + ", ".join(str(i) for i in self.items) + " }")
            )
        elif self.kind == "table":
            body = f"table({self.table})"
        else:
            body = self.kind
        return f"not {body}" if self.negate else body


ANY = AddrSpec()

PortRanges = tuple[tuple[int, int], ...]


def _ports_str(ports: PortRanges) -> str:
    return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ports)


def _flags_str(flags_set: int, flags_clear: int) -> str:
    out = []
    for name, bit in _TCP_FLAG_NAMES.items():
        if flags_set & bit:
            out.append(name)
        elif flags_clear & bit:
            out.append("!" + name)
    return ",".join(out)


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule, as parsed (``str(rule)`` is its normalized text; ``line`` is not compared)."""

    number: int
    action: Action
    src: AddrSpec = ANY
    dst: AddrSpec = ANY
    proto: int = -1  # -1: any
    sport: PortRanges = ()
    dport: PortRanges = ()
    arg: int = 0  # unreach code or skipto target number
    log: bool = False
    direction: Direction | None = None
    recv: str | None = None
    xmit: str | None = None
    via: str | None = None
    setup: bool = False
    established: bool = False
    flags_set: int = 0
    flags_clear: int = 0
    icmptypes: tuple[int, ...] = ()
    ttl: tuple[int, int] | None = None
    frag: bool = False
    keep_state: bool = False
    limit: int = 0
    line: int = field(default=0, compare=False)

    def __str__(self) -> str:
        words = [f"{self.number:05d}", self.action.value]
        if self.action is Action.UNREACH:
            words.append(_UNREACH_BY_CODE.get(self.arg, str(self.arg)))
        elif self.action is Action.SKIPTO:
            words.append(str(self.arg))
        if self.log:
            words.append("log")
        words.append("ip" if self.proto < 0 else _PROTO_BY_NUMBER.get(self.proto, str(self.proto)))
        words += ["from", str(self.src)]
        if self.sport:
            words.append(_ports_str(self.sport))
        words += ["to", str(self.dst)]
        if self.dport:
            words.append(_ports_str(self.dport))
        if self.direction is not None:
            words.append("in" if self.direction is Direction.IN else "out")
        for word, name in (("recv", self.recv), ("xmit", self.xmit), ("via", self.via)):
            if name is not None:
                words += [word, name]
        if self.setup:
            words.append("setup")
        if self.established:
            words.append("established")
        if self.flags_set or self.flags_clear:
            words += ["tcpflags", _flags_str(self.flags_set, self.flags_clear)]
        if self.icmptypes:
            words += ["icmptypes", ",".join(map(str, self.icmptypes))]
        if self.ttl is not None:
            lo, hi = self.ttl
            words += ["ttl", str(lo) if lo == hi else f"{lo}-{hi}"]
        if self.frag:
            words.append("frag")
        if self.keep_state:
            words.append("keep-state")
            if self.limit:
                words += ["limit", str(self.limit)]
        return " ".join(words)


# -- parser --------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[{},]|[^\s{},]+")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]*\Z")
_TABLE_REF = re.compile(r"table\(([^()]*)\)\Z")

_OPTIONS_EXPECTED = (
    "an option (in, out, via, recv, xmit, tcpflags, setup, established, icmptypes, ttl, "
    "keep-state, frag)"
)
_ADDR_EXPECTED = "an address (any, me, A.B.C.D[/len|:mask|-E.F.G.H], { list } or table(NAME))"


class _Line:
    """Tokens of one line, with 1-based columns, and error reporting in the file's terms."""

    def __init__(self, text: str, filename: str, line_no: int, rule_no: int | None) -> None:
        self.tokens = [(m.group(), m.start() + 1) for m in _TOKEN.finditer(text)]
        self.end_col = len(text.rstrip()) + 1
        self.pos = 0
        self.filename = filename
        self.line_no = line_no
        self.rule_no = rule_no

    def peek(self) -> str:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else ""

    def col(self) -> int:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else self.end_col

    def next(self) -> str:
        tok = self.peek()
        if self.pos < len(self.tokens):
            self.pos += 1
        return tok

    def error(self, expected: str, back: int = 0) -> FirewallError:
        """An error about the current token (or the one ``back`` tokens before it)."""
        i = self.pos - back
        tok, col = self.tokens[i] if i < len(self.tokens) else ("", self.end_col)
        return FirewallError(self.filename, self.rule_no, self.line_no, col, expected, tok)

    def number(self, expected: str, lo: int, hi: int) -> int:
        value = ascii_int(self.peek(), lo, hi)
        if value is None:
            raise self.error(expected)
        self.next()
        return value

    def error_at(self, index: int, expected: str) -> FirewallError:
        """An error about token ``index`` (end of line when past the last token)."""
        return self.error(expected, back=self.pos - index)

    def comma_list(self) -> list[tuple[str, int]]:
        """``a,b, c`` -> the items with their token indexes (the separator may have spaces)."""
        items = [(self.peek(), self.pos)]
        self.next()
        while self.peek() == ",":
            self.next()
            items.append((self.peek(), self.pos))
            self.next()
        return items


_LEADING_ZERO = (
    "an address without leading zeros (010 is octal 8 to inet_aton and ipfw, 10 to others)"
)


def _quad_of(ln: _Line, text: str, expected: str) -> int:
    """The dotted quad ``text`` (part of the token just consumed), or the error ``expected``
    about that token -- worded for a leading zero when that is what is wrong."""
    addr = parse_quad(text)
    if addr is None:
        raise ln.error(_LEADING_ZERO if has_leading_zero(text) else expected, back=1)
    return addr


def _prefix_len(ln: _Line, text: str) -> int:
    plen = ascii_int(text, 0, 32)
    if plen is None:
        raise ln.error("a prefix length 0..32", back=1)
    return plen


def _addr_item(ln: _Line, tok: str) -> AddrItem:
    """One address form; ``tok`` was just consumed."""
    if "/" in tok:
        addr_text, _, plen_text = tok.partition("/")
        addr = _quad_of(ln, addr_text, _ADDR_EXPECTED)
        plen = _prefix_len(ln, plen_text)
        return AddrItem("prefix", addr & prefix_mask(plen), plen)
    if ":" in tok:
        addr_text, _, mask_text = tok.partition(":")
        addr = _quad_of(ln, addr_text, _ADDR_EXPECTED)
        mask = _quad_of(ln, mask_text, "a mask A.B.C.D after ':'")
        return AddrItem("mask", addr & mask, mask)
    if "-" in tok:
        lo_text, _, hi_text = tok.partition("-")
        lo = _quad_of(ln, lo_text, _ADDR_EXPECTED)
        hi = _quad_of(ln, hi_text, _ADDR_EXPECTED)
        if lo > hi:
            raise ln.error("an address range low-high with low <= high", back=1)
        return AddrItem("range", lo, hi)
    return AddrItem("host", _quad_of(ln, tok, _ADDR_EXPECTED))


def _parse_addr(ln: _Line, table_refs: list[tuple[str, _Line, int]]) -> AddrSpec:
    negate = False
    if ln.peek() == "not":
        ln.next()
        negate = True
    tok = ln.next()
    if tok in ("any", "me"):
        return AddrSpec(tok, negate=negate)
    m = _TABLE_REF.match(tok)
    if m:
        name = m.group(1)
        if not _NAME.match(name):
            raise ln.error("a table name (letters, digits, '_', '.', '-')", back=1)
        table_refs.append((name, ln, ln.pos - 1))
        return AddrSpec("table", table=name, negate=negate)
    if tok == "{":
        items = []
        while True:
            if ln.peek() in ("", "}", ","):
                raise ln.error(_ADDR_EXPECTED)
            items.append(_addr_item(ln, ln.next()))
            sep = ln.next()
            if sep == "}":
                break
            if sep != ",":
                raise ln.error("',' or '}'", back=1 if sep else 0)
        return AddrSpec("list", tuple(items), negate=negate)
    if tok in ("", "}", ","):
        raise ln.error(_ADDR_EXPECTED, back=1 if tok else 0)
    return AddrSpec("list", (_addr_item(ln, tok),), negate=negate)


def _port_value(text: str) -> int | None:
    if text[:1].isdigit():
        return ascii_int(text, 0, 0xFFFF)
    return SERVICES.get(text)


def _is_ports(tok: str) -> bool:
    # Only an ASCII digit starts a port: '²' or '٨' here is an error at 'to', not a port.
    return tok[:1] in _ASCII_DIGITS or tok.split("-")[0] in SERVICES


_ASCII_DIGITS = frozenset("0123456789")


def _parse_ports(ln: _Line, proto: int) -> PortRanges:
    if proto not in (6, 17):
        raise ln.error("'to' or options (ports need proto tcp or udp)")
    out: list[tuple[int, int]] = []
    for item, at in ln.comma_list():
        lo_text, sep, hi_text = item.partition("-")
        lo = _port_value(lo_text)
        hi = _port_value(hi_text) if sep else lo
        if lo is None or hi is None:
            raise ln.error_at(at, "a port (0..65535 or a service name)")
        if lo > hi:
            raise ln.error_at(at, "a port range low-high with low <= high")
        out.append((lo, hi))
    return tuple(out)


def _parse_rule_tokens(ln: _Line, number: int, table_refs: list[tuple[str, _Line, int]]) -> Rule:
    word = ln.next()
    action = _ACTION_WORDS.get(word)
    if action is None:
        raise ln.error("an action (allow, deny, reset, unreach, count, skipto)", back=1)
    arg = 0
    if action is Action.UNREACH:
        code = ln.peek()
        if code in _UNREACH_NAMES:
            arg = _UNREACH_NAMES[code]
            ln.next()
        else:
            arg = ln.number(
                "an unreach code (net, host, proto, port, net-prohib, host-prohib, "
                "filter-prohib or 0..15)",
                0,
                15,
            )
    elif action is Action.SKIPTO:
        arg = ln.number(f"a rule number above {number} to skip to", number + 1, DEFAULT_RULE)
    log = ln.peek() == "log"
    if log:
        ln.next()
    tok = ln.next()
    if tok in ("ip", "all"):
        proto = -1
    elif tok in _PROTO_NAMES:
        proto = _PROTO_NAMES[tok]
    elif (number_proto := ascii_int(tok, 0, 255)) is not None:
        proto = number_proto
    else:
        raise ln.error("a protocol (ip, tcp, udp, icmp or a number 0..255)", back=1 if tok else 0)
    if ln.peek() != "from":
        raise ln.error("'from'")
    ln.next()
    src = _parse_addr(ln, table_refs)
    sport = _parse_ports(ln, proto) if _is_ports(ln.peek()) else ()
    if ln.peek() != "to":
        raise ln.error("'to'")
    ln.next()
    dst = _parse_addr(ln, table_refs)
    dport = _parse_ports(ln, proto) if _is_ports(ln.peek()) else ()
    rule = Rule(number, action, src, dst, proto, sport, dport, arg, log, line=ln.line_no)
    seen: set[str] = set()
    while ln.peek():
        opt = ln.next()
        key = "in" if opt == "out" else opt
        if key in seen:
            raise ln.error("each option at most once", back=1)
        seen.add(key)
        if opt in ("in", "out"):
            rule = replace(rule, direction=Direction.IN if opt == "in" else Direction.OUT)
        elif opt in ("via", "recv", "xmit"):
            name = ln.next()
            if not _NAME.match(name):
                raise ln.error("an interface name", back=1 if name else 0)
            if opt == "via":
                rule = replace(rule, via=name)
            elif opt == "recv":
                rule = replace(rule, recv=name)
            else:
                rule = replace(rule, xmit=name)
        elif opt in ("tcpflags", "setup", "established"):
            if proto != 6:
                raise ln.error(f"'{opt}' only with proto tcp", back=1)
            if opt == "setup":
                rule = replace(rule, setup=True)
            elif opt == "established":
                rule = replace(rule, established=True)
            else:
                rule = _parse_tcpflags(ln, rule)
        elif opt == "icmptypes":
            if proto != 1:
                raise ln.error("'icmptypes' only with proto icmp", back=1)
            types: set[int] = set()
            for item, at in ln.comma_list():
                value = _ICMP_TYPE_NAMES.get(item)
                if value is None:
                    value = ascii_int(item, 0, 255)
                if value is None:
                    raise ln.error_at(at, "an ICMP type (0..255 or a name)")
                types.add(value)
            rule = replace(rule, icmptypes=tuple(sorted(types)))
        elif opt == "ttl":
            tok = ln.next()
            lo_text, sep, hi_text = tok.partition("-")
            lo_ttl = ascii_int(lo_text, 0, 255)
            hi_ttl = ascii_int(hi_text, 0, 255) if sep else lo_ttl
            if lo_ttl is None or hi_ttl is None:
                raise ln.error("a TTL N or N-M (0..255)", back=1 if tok else 0)
            lo, hi = lo_ttl, hi_ttl
            if lo > hi:
                raise ln.error("a TTL range low-high with low <= high", back=1)
            rule = replace(rule, ttl=(lo, hi))
        elif opt == "frag":
            rule = replace(rule, frag=True)
        elif opt == "keep-state":
            if action in (Action.COUNT, Action.SKIPTO):
                raise ln.error("keep-state only on allow, deny, reset or unreach rules", back=1)
            limit = 0
            if ln.peek() == "limit":
                ln.next()
                limit = ln.number("a state limit 1..1000000000", 1, 1_000_000_000)
            rule = replace(rule, keep_state=True, limit=limit)
        else:
            raise ln.error(_OPTIONS_EXPECTED, back=1)
    return rule


def _parse_tcpflags(ln: _Line, rule: Rule) -> Rule:
    flags_set = flags_clear = 0
    for item, at in ln.comma_list():
        negate = item.startswith("!")
        bit = _TCP_FLAG_NAMES.get(item[1:] if negate else item)
        if bit is None or (flags_set | flags_clear) & bit:
            raise ln.error_at(
                at,
                "a TCP flag (fin, syn, rst, psh, ack, urg, ece, cwr, each at most once, "
                "'!' to require it clear)",
            )
        if negate:
            flags_clear |= bit
        else:
            flags_set |= bit
    return replace(rule, flags_set=flags_set, flags_clear=flags_clear)


def parse_rule(text: str, number: int = NUMBER_STEP) -> Rule:
    """One rule line; ``number`` is used when the line has none (no tables are checked)."""
    ln = _Line(text.split("#", 1)[0], "<rule>", 1, number)
    if ln.peek().isdigit():
        ln.rule_no = number = ln.number("a rule number 1..65534", 1, MAX_RULE)
    return _parse_rule_tokens(ln, number, [])


def _parse_table_line(ln: _Line, tables: dict[str, dict[tuple[int, int], str | None]]) -> None:
    ln.next()  # 'table'
    name = ln.next()
    if not _NAME.match(name):
        raise ln.error("a table name (letters, digits, '_', '.', '-')", back=1 if name else 0)
    if ln.peek() != "add":
        raise ln.error("'add'")
    ln.next()
    tok = ln.next()
    if not tok:
        raise ln.error("a prefix A.B.C.D/len")
    addr_text, sep, plen_text = tok.partition("/")
    addr = _quad_of(ln, addr_text, "a prefix A.B.C.D/len")
    plen = _prefix_len(ln, plen_text) if sep else 32
    if addr & ~prefix_mask(plen) & 0xFFFFFFFF:
        raise ln.error(f"a prefix without host bits beyond /{plen}", back=1)
    value: str | None = None
    if ln.peek():
        value = ln.next()
    if ln.peek():
        raise ln.error("end of line")
    tables.setdefault(name, {})[(addr, plen)] = value


def parse_rules(
    text: str,
    filename: str = "<rules>",
    *,
    tables: Mapping[str, Rib] | None = None,
    default_allow: bool = False,
    me: Iterable[int] = (),
    interfaces: Mapping[str, int] | None = None,
    max_states: int = 4096,
    timeouts: StateTimeouts | None = None,
    reply_source: int | None = None,
) -> Ruleset:
    """Parse a whole rule file into a :class:`Ruleset`.

    Parameters
    ----------
    text:
        The file's text.
    filename:
        Used in error messages.
    tables:
        Named tables loaded elsewhere (e.g. ``load_table(path).rib`` from
        :mod:`netfast.route.loaders`); ``table`` lines of the file naming one of them add their
        prefixes to that Rib.
    default_allow:
        The default rule 65535 allows instead of denies (a ``65535`` line in the file wins).
    me, interfaces, max_states, timeouts, reply_source:
        As for :class:`Ruleset`.

    Raises
    ------
    FirewallError
        The first malformed line.
    """
    rules: list[Rule] = []
    file_tables: dict[str, dict[tuple[int, int], str | None]] = {}
    table_refs: list[tuple[str, _Line, int]] = []
    last = 0
    saw_default = False
    for line_no, raw in file_lines(text):
        body = raw.split("#", 1)[0]
        if not body.strip():
            continue
        ln = _Line(body, filename, line_no, None)
        if ln.peek() == "table":
            _parse_table_line(ln, file_tables)
            continue
        ln.rule_no = last + NUMBER_STEP
        if saw_default:
            raise ln.error("nothing after the default rule 65535")
        if ln.peek().isdigit():
            # Any digits make a rule number; ln.number refuses all but ASCII ones.
            tok_value = ascii_int(ln.peek(), 0, DEFAULT_RULE)
            if tok_value == DEFAULT_RULE:
                ln.rule_no = DEFAULT_RULE
                default_allow = _parse_default(ln)
                saw_default = True
                last = DEFAULT_RULE
                continue
            if tok_value is not None:
                ln.rule_no = tok_value
            number = ln.number(
                f"a rule number above {last} and at most {MAX_RULE}", last + 1, MAX_RULE
            )
        else:
            number = last + NUMBER_STEP
            if number > MAX_RULE:
                raise ln.error(f"room for a rule number above {last} (number the rule)")
        rules.append(_parse_rule_tokens(ln, number, table_refs))
        last = number
    ribs: dict[str, Rib] = dict(tables or {})
    for name, entries in file_tables.items():
        rib = ribs.get(name)
        if rib is None:
            rib = ribs[name] = Rib(capacity=max(16, len(entries)))
        for (net, plen), value in entries.items():
            rib.add(net, plen, value)
    for name, ln, pos in table_refs:
        if name not in ribs:
            ln.pos = pos
            raise ln.error(f"a defined table (known: {', '.join(sorted(ribs)) or 'none'})")
    return Ruleset(
        rules,
        tables=ribs,
        default_allow=default_allow,
        me=me,
        interfaces=interfaces,
        max_states=max_states,
        timeouts=timeouts,
        reply_source=reply_source,
    )


def _parse_default(ln: _Line) -> bool:
    """``65535 allow|deny ip from any to any``: the default rule restated; True for allow."""
    ln.next()
    rule = _parse_rule_tokens(ln, DEFAULT_RULE, [])
    if rule.action not in (Action.ALLOW, Action.DENY) or rule != Rule(DEFAULT_RULE, rule.action):
        ln.pos = 1
        raise ln.error("the default rule as 'allow|deny ip from any to any'")
    return rule.action is Action.ALLOW


def read_rules(path: str | Path) -> str:
    """The text of a rule file: UTF-8 (a leading byte-order mark is dropped), newlines as they
    are in the file (``\r`` is not turned into a line break, so line numbers are the file's).

    Raises
    ------
    OSError
        The file cannot be read (missing, a directory, no permission).
    FirewallError
        The file is not UTF-8: the line and column of the first byte that is not.
    """
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        column = len(data[start : exc.start].decode("utf-8", "replace")) + 1
        bad = data[exc.start : exc.start + 1]
        raise FirewallError(
            str(path),
            None,
            line,
            column,
            "UTF-8 text",
            bad.decode("latin-1"),
            what="",
            found_text=f"byte 0x{bad.hex()}",
        ) from None


def load_rules(path: str | Path, **kwargs: Any) -> Ruleset:
    """Read (:func:`read_rules`) and parse a rule file (errors name the file); keyword
    arguments as for :func:`parse_rules`."""
    return parse_rules(read_rules(path), str(path), **kwargs)


# -- compiled form -------------------------------------------------------------------------------

_ADDR_ANY, _ADDR_ME, _ADDR_TABLE, _ADDR_LIST = range(4)
_A_ALLOW, _A_DENY, _A_RESET, _A_UNREACH, _A_COUNT, _A_SKIPTO = range(6)
_ACTION_CODE = {
    Action.ALLOW: _A_ALLOW,
    Action.DENY: _A_DENY,
    Action.RESET: _A_RESET,
    Action.UNREACH: _A_UNREACH,
    Action.COUNT: _A_COUNT,
    Action.SKIPTO: _A_SKIPTO,
}
_NO_IF = -2  # an interface name the ruleset does not know: matches nothing


class _AddrMatch:
    """An address spec reduced to integer tests: (mask, value) pairs and [lo, hi] ranges."""

    __slots__ = ("kind", "me", "me_array", "negate", "nets", "ranges", "table")

    def __init__(
        self, spec: AddrSpec, tables: Mapping[str, RoutingTable], me: frozenset[int]
    ) -> None:
        self.kind = {"any": _ADDR_ANY, "me": _ADDR_ME, "table": _ADDR_TABLE, "list": _ADDR_LIST}[
            spec.kind
        ]
        self.negate = spec.negate
        nets: list[tuple[int, int]] = []
        ranges: list[tuple[int, int]] = []
        for item in spec.items:
            if item.kind == "host":
                nets.append((0xFFFFFFFF, item.a))
            elif item.kind == "prefix":
                nets.append((prefix_mask(item.b), item.a))
            elif item.kind == "mask":
                nets.append((item.b, item.a))
            else:
                ranges.append((item.a, item.b))
        self.nets = tuple(nets)
        self.ranges = tuple(ranges)
        self.table = tables.get(spec.table) if spec.kind == "table" else None
        self.me = me
        self.me_array = np.array(sorted(me), np.uint32)

    def match(self, addr: int) -> bool:
        kind = self.kind
        if kind == _ADDR_LIST:
            hit = False
            for mask, value in self.nets:
                if addr & mask == value:
                    hit = True
                    break
            else:
                for lo, hi in self.ranges:
                    if lo <= addr <= hi:
                        hit = True
                        break
        elif kind == _ADDR_ANY:
            hit = True
        elif kind == _ADDR_ME:
            hit = addr in self.me
        else:
            assert self.table is not None
            hit = self.table.lookup(addr) >= 0
        return hit != self.negate

    def vmatch_raw(self, addrs: npt.NDArray[np.integer]) -> npt.NDArray[np.bool_]:
        """The ``me`` / ``table`` test over a batch, before negation (the kernel negates)."""
        if self.kind == _ADDR_ME:
            return np.isin(addrs, self.me_array)
        assert self.table is not None
        return self.table.lookup_batch(np.asarray(addrs).astype(np.uint32)) >= 0

    def vmatch(self, addrs: npt.NDArray[np.uint32]) -> npt.NDArray[np.bool_]:
        kind = self.kind
        if kind == _ADDR_LIST:
            hit = np.zeros(len(addrs), np.bool_)
            for mask, value in self.nets:
                if mask == 0xFFFFFFFF:
                    hit |= addrs == value
                else:
                    hit |= (addrs & np.uint32(mask)) == value
            for lo, hi in self.ranges:
                hit |= (addrs >= lo) & (addrs <= hi)
        elif kind == _ADDR_ANY:
            hit = np.ones(len(addrs), np.bool_)
        elif kind == _ADDR_ME:
            hit = np.isin(addrs, self.me_array)
        else:
            assert self.table is not None
            hit = self.table.lookup_batch(addrs) >= 0
        return ~hit if self.negate else hit


def _port_match(port: int, ranges: PortRanges) -> bool:
    return any(lo <= port <= hi for lo, hi in ranges)


def _vport_match(ports: npt.NDArray[np.int64], ranges: PortRanges) -> npt.NDArray[np.bool_]:
    hit = np.zeros(len(ports), np.bool_)
    for lo, hi in ranges:
        if lo == hi:
            hit |= ports == lo
        else:
            hit |= (ports >= lo) & (ports <= hi)
    return hit


class _Compiled:
    """A rule as precomputed integers, for a tight scalar loop and mask-building in the vector
    form.  ``None`` / ``-1`` mean "no condition"."""

    __slots__ = (
        "action",
        "direction",
        "dport",
        "dst",
        "flags_any",
        "flags_clear",
        "flags_set",
        "frag",
        "icmp_array",
        "icmptypes",
        "index",
        "proto",
        "punts",
        "recv",
        "rule",
        "sport",
        "src",
        "target",
        "ttl_hi",
        "ttl_lo",
        "via",
        "xmit",
    )

    def __init__(
        self,
        index: int,
        rule: Rule,
        target: int,
        tables: Mapping[str, RoutingTable],
        me: frozenset[int],
        interfaces: Mapping[str, int],
    ) -> None:
        self.index = index
        self.rule = rule
        self.action = _ACTION_CODE[rule.action]
        self.target = target
        self.proto = rule.proto
        self.src = None if rule.src == ANY else _AddrMatch(rule.src, tables, me)
        self.dst = None if rule.dst == ANY else _AddrMatch(rule.dst, tables, me)
        self.sport = rule.sport or None
        self.dport = rule.dport or None
        self.direction = -1 if rule.direction is None else int(rule.direction)
        self.recv = None if rule.recv is None else interfaces.get(rule.recv, _NO_IF)
        self.xmit = None if rule.xmit is None else interfaces.get(rule.xmit, _NO_IF)
        self.via = None if rule.via is None else interfaces.get(rule.via, _NO_IF)
        flags_set, flags_clear = rule.flags_set, rule.flags_clear
        if rule.setup:
            flags_set |= TcpFlags.SYN
            flags_clear |= TcpFlags.ACK
        self.flags_set = int(flags_set)
        self.flags_clear = int(flags_clear)
        self.flags_any = int(TcpFlags.ACK | TcpFlags.RST) if rule.established else 0
        self.icmptypes = frozenset(rule.icmptypes) if rule.icmptypes else None
        self.icmp_array = np.array(rule.icmptypes, np.int64)
        self.ttl_lo, self.ttl_hi = rule.ttl if rule.ttl is not None else (-1, -1)
        self.frag = rule.frag
        # Matches the vector form hands to the scalar path (reset is refined per packet).
        self.punts = rule.log or rule.keep_state or self.action == _A_UNREACH

    def match(self, pkt: PfilPacket) -> bool:
        if self.proto >= 0 and pkt.proto != self.proto:
            return False
        if self.src is not None and not self.src.match(pkt.src):
            return False
        if self.dst is not None and not self.dst.match(pkt.dst):
            return False
        if self.sport is not None and (pkt.sport < 0 or not _port_match(pkt.sport, self.sport)):
            return False
        if self.dport is not None and (pkt.dport < 0 or not _port_match(pkt.dport, self.dport)):
            return False
        direction = pkt.direction
        if self.direction >= 0 and direction != self.direction:
            return False
        if self.recv is not None and (direction == Direction.OUT or pkt.ifindex != self.recv):
            return False
        if self.xmit is not None and (direction != Direction.OUT or pkt.ifindex != self.xmit):
            return False
        if self.via is not None and pkt.ifindex != self.via:
            return False
        if self.flags_set or self.flags_clear or self.flags_any:
            flags = pkt.tcp_flags
            if flags < 0 or flags & self.flags_set != self.flags_set or flags & self.flags_clear:
                return False
            if self.flags_any and not flags & self.flags_any:
                return False
        if self.icmptypes is not None and pkt.icmp_type not in self.icmptypes:
            return False
        if self.ttl_lo >= 0 and not self.ttl_lo <= pkt.ttl <= self.ttl_hi:
            return False
        return not self.frag or pkt.fragment

    def vmatch(
        self,
        cols: Mapping[str, npt.NDArray[np.integer]],
        direction: int,
        ifindex: npt.NDArray[np.integer],
        cand: npt.NDArray[np.bool_],
    ) -> npt.NDArray[np.bool_]:
        """The candidates (``cand``, not modified) this rule matches."""
        m = cand.copy()
        if self.direction >= 0 and direction != self.direction:
            m[:] = False
            return m
        if self.recv is not None:
            if direction == Direction.OUT:
                m[:] = False
                return m
            m &= ifindex == self.recv
        if self.xmit is not None:
            if direction != Direction.OUT:
                m[:] = False
                return m
            m &= ifindex == self.xmit
        if self.via is not None:
            m &= ifindex == self.via
        if self.proto >= 0:
            m &= cols["proto"] == self.proto
        if self.src is not None:
            m &= self.src.vmatch(cols["src"])  # type: ignore[arg-type]
        if self.dst is not None:
            m &= self.dst.vmatch(cols["dst"])  # type: ignore[arg-type]
        if self.sport is not None:
            m &= _vport_match(cols["sport"], self.sport)  # type: ignore[arg-type]
        if self.dport is not None:
            m &= _vport_match(cols["dport"], self.dport)  # type: ignore[arg-type]
        if self.flags_set or self.flags_clear or self.flags_any:
            flags = cols["tcp_flags"]
            m &= flags >= 0
            # set and clear tested apart: a flag in both (``setup`` with ``tcpflags !syn``)
            # matches nothing, as in the scalar form
            m &= (flags & self.flags_set) == self.flags_set
            m &= (flags & self.flags_clear) == 0
            if self.flags_any:
                m &= (flags & self.flags_any) != 0
        if self.icmptypes is not None:
            m &= np.isin(cols["icmp_type"], self.icmp_array)
        if self.ttl_lo >= 0:
            ttl = cols["ttl"]
            m &= (ttl >= self.ttl_lo) & (ttl <= self.ttl_hi)
        if self.frag:
            m &= cols["fragment"] != 0
        return m


# -- the vector form: a rule table and a kernel ---------------------------------------------------

# Columns of _RuleTable.rules.  _NONE: "no condition" (an interface condition holds -2 for a name
# the ruleset does not know, which matches nothing, as in the scalar form).
_NONE = -(1 << 62)
(
    _R_ACTION, _R_TARGET, _R_PUNTS, _R_PROTO, _R_DIR, _R_RECV, _R_XMIT, _R_VIA,
    _R_FSET, _R_FCLEAR, _R_FANY, _R_TTL_LO, _R_TTL_HI, _R_FRAG,
    _R_SRC_KIND, _R_SRC_NEG, _R_SRC_OFF, _R_SRC_CNT,
    _R_DST_KIND, _R_DST_NEG, _R_DST_OFF, _R_DST_CNT,
    _R_SP_OFF, _R_SP_CNT, _R_DP_OFF, _R_DP_CNT, _R_IC_OFF, _R_IC_CNT,
    _R_FIELDS,
) = range(29)  # fmt: skip
# Address condition kinds: none, a list (masks and ranges in ``addrs``), always hit (``any``, only
# seen negated), an ``ext`` column (``me`` / ``table``; OFF is the column).
_K_NONE, _K_LIST, _K_ALL, _K_EXT = range(4)
_DIR_OUT = int(Direction.OUT)


class _RuleTable:
    """The compiled rules as integer arrays for :func:`_evaluate_kernel`.

    ``rules`` is ``(n_rules, _R_FIELDS)`` int64; ``addrs`` ``(k, 3)`` rows ``(0, mask, value)`` or
    ``(1, lo, hi)``; ``ports`` ``(k, 2)`` ranges; ``icmp`` the ICMP types; ``ext`` the
    ``(_AddrMatch, column name)`` pairs evaluated per batch before the kernel runs."""

    __slots__ = ("addrs", "ext", "icmp", "ports", "rules")

    def __init__(self, compiled: Sequence[_Compiled]) -> None:
        rules = np.zeros((len(compiled), _R_FIELDS), np.int64)
        addrs: list[tuple[int, int, int]] = []
        ports: list[tuple[int, int]] = []
        icmp: list[int] = []
        ext: list[tuple[_AddrMatch, str]] = []
        for i, c in enumerate(compiled):
            r = rules[i]
            r[_R_ACTION] = c.action
            r[_R_TARGET] = c.target
            r[_R_PUNTS] = c.punts
            r[_R_PROTO] = c.proto
            r[_R_DIR] = c.direction
            for col, value in ((_R_RECV, c.recv), (_R_XMIT, c.xmit), (_R_VIA, c.via)):
                r[col] = _NONE if value is None else value
            r[_R_FSET], r[_R_FCLEAR], r[_R_FANY] = c.flags_set, c.flags_clear, c.flags_any
            r[_R_TTL_LO], r[_R_TTL_HI] = c.ttl_lo, c.ttl_hi
            r[_R_FRAG] = c.frag
            for base, match, column in ((_R_SRC_KIND, c.src, "src"), (_R_DST_KIND, c.dst, "dst")):
                if match is None:
                    r[base] = _K_NONE
                    continue
                r[base + 1] = match.negate
                if match.kind == _ADDR_LIST:
                    r[base], r[base + 2] = _K_LIST, len(addrs)
                    addrs += [(0, mask, value) for mask, value in match.nets]
                    addrs += [(1, lo, hi) for lo, hi in match.ranges]
                    r[base + 3] = len(addrs) - r[base + 2]
                elif match.kind == _ADDR_ANY:
                    r[base] = _K_ALL
                else:
                    r[base], r[base + 2] = _K_EXT, len(ext)
                    ext.append((match, column))
            for off, ranges in ((_R_SP_OFF, c.sport), (_R_DP_OFF, c.dport)):
                r[off] = len(ports)
                ports += list(ranges or ())
                r[off + 1] = len(ports) - r[off]
            r[_R_IC_OFF] = len(icmp)
            icmp += sorted(c.icmptypes or ())
            r[_R_IC_CNT] = len(icmp) - r[_R_IC_OFF]
        self.rules = rules
        self.addrs = np.array(addrs, np.int64).reshape(-1, 3)
        self.ports = np.array(ports, np.int64).reshape(-1, 2)
        self.icmp = np.array(icmp, np.int64)
        self.ext = ext

    def live(
        self, direction: int, proto_counts: npt.NDArray[np.intp]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.intp]]:
        """The rules that can match some packet of a call at ``direction`` over packets with
        these protocol counts (index 256: absent or out of range), as a table whose skipto
        targets are renumbered (to the first such rule at or after the target), and their
        indexes in the ruleset.  The default rule is always among them."""
        rules = self.rules
        n = len(rules)
        proto = rules[:, _R_PROTO]
        live = proto < 0
        known = (proto >= 0) & (proto < 256)
        live[known] = proto_counts[proto[known]] > 0
        live &= (rules[:, _R_DIR] < 0) | (rules[:, _R_DIR] == direction)
        live &= (rules[:, _R_RECV] == _NONE) | (direction != _DIR_OUT)
        live &= (rules[:, _R_XMIT] == _NONE) | (direction == _DIR_OUT)
        live[n - 1] = True
        orig = np.flatnonzero(live)
        table = rules[orig]
        skip = table[:, _R_ACTION] == _A_SKIPTO
        table[skip, _R_TARGET] = np.searchsorted(orig, table[skip, _R_TARGET])
        return table, orig


@numba.njit(nogil=True, cache=True)
def _evaluate_kernel(
    rules: Any,
    orig: Any,
    addrs: Any,
    ports: Any,
    icmp: Any,
    ext: Any,
    direction: int,
    src: Any,
    dst: Any,
    proto: Any,
    sport: Any,
    dport: Any,
    tcp_flags: Any,
    icmp_type: Any,
    ttl: Any,
    length: Any,
    fragment: Any,
    ifindex: Any,
    in_state: Any,
    verdict: Any,
    packets: Any,
    nbytes: Any,
) -> None:  # pragma: no cover - compiled
    """The scalar rule walk (:meth:`Ruleset.evaluate` without states, logs or replies) per
    packet: PASS/DROP decided and counted here -- with the count and skipto rules the packet
    passed on its way -- or PUNT, counted by nobody (the scalar path counts it later).
    ``rules`` holds only the rules that can match this batch (``orig``: their indexes in the
    ruleset, skipto targets renumbered), so the walk is a plain increment."""
    n_rules = rules.shape[0]
    trail = np.empty(n_rules, np.int64)  # count/skipto rules matched on the way
    for p in range(src.shape[0]):
        if in_state[p]:
            verdict[p] = VERDICT_PUNT
            continue
        ifx = ifindex[p]
        pr = proto[p]
        n_trail = 0
        i = 0
        while True:
            if i >= n_rules:  # unreachable: the default rule matches everything
                verdict[p] = VERDICT_PUNT
                break
            # the conditions of _Compiled.match, cheapest first
            if rules[i, _R_DIR] >= 0 and direction != rules[i, _R_DIR]:
                i += 1
                continue
            if rules[i, _R_PROTO] >= 0 and pr != rules[i, _R_PROTO]:
                i += 1
                continue
            v = rules[i, _R_RECV]
            if v != _NONE and (direction == _DIR_OUT or ifx != v):
                i += 1
                continue
            v = rules[i, _R_XMIT]
            if v != _NONE and (direction != _DIR_OUT or ifx != v):
                i += 1
                continue
            v = rules[i, _R_VIA]
            if v != _NONE and ifx != v:
                i += 1
                continue
            # Addresses and ports written out here: helper calls taking the arrays cost a
            # reference count round trip each, more than the tests themselves.
            ok = True
            for side in range(2):
                base = _R_SRC_KIND if side == 0 else _R_DST_KIND
                kind = rules[i, base]
                if kind == _K_NONE:
                    continue
                if kind == _K_LIST:
                    a = src[p] if side == 0 else dst[p]
                    hit = False
                    off = rules[i, base + 2]
                    for j in range(off, off + rules[i, base + 3]):
                        if addrs[j, 0] == 0:
                            if a & addrs[j, 1] == addrs[j, 2]:
                                hit = True
                                break
                        elif addrs[j, 1] <= a <= addrs[j, 2]:
                            hit = True
                            break
                elif kind == _K_ALL:
                    hit = True
                else:
                    hit = ext[rules[i, base + 2], p] != 0
                if hit == (rules[i, base + 1] != 0):
                    ok = False
                    break
            if not ok:
                i += 1
                continue
            for side in range(2):
                off = _R_SP_OFF if side == 0 else _R_DP_OFF
                cnt = rules[i, off + 1]
                if cnt == 0:
                    continue
                port = sport[p] if side == 0 else dport[p]
                hit = False
                if port >= 0:
                    start = rules[i, off]
                    for j in range(start, start + cnt):
                        if ports[j, 0] <= port <= ports[j, 1]:
                            hit = True
                            break
                if not hit:
                    ok = False
                    break
            if not ok:
                i += 1
                continue
            fset, fclear, fany = rules[i, _R_FSET], rules[i, _R_FCLEAR], rules[i, _R_FANY]
            if fset or fclear or fany:
                f = tcp_flags[p]
                if f < 0 or f & fset != fset or f & fclear:
                    i += 1
                    continue
                if fany and not f & fany:
                    i += 1
                    continue
            cnt = rules[i, _R_IC_CNT]
            if cnt:
                off = rules[i, _R_IC_OFF]
                t = icmp_type[p]
                found = False
                for j in range(off, off + cnt):
                    if icmp[j] == t:
                        found = True
                        break
                if not found:
                    i += 1
                    continue
            lo = rules[i, _R_TTL_LO]
            if lo >= 0 and not lo <= ttl[p] <= rules[i, _R_TTL_HI]:
                i += 1
                continue
            if rules[i, _R_FRAG] and not fragment[p]:
                i += 1
                continue
            # rule i matches
            action = rules[i, _R_ACTION]
            if rules[i, _R_PUNTS] or (action == _A_RESET and pr == 6):
                verdict[p] = VERDICT_PUNT
                break
            if action == _A_COUNT or action == _A_SKIPTO:  # noqa: SIM109 - numba
                trail[n_trail] = i
                n_trail += 1
                i = i + 1 if action == _A_COUNT else rules[i, _R_TARGET]
                continue
            verdict[p] = VERDICT_PASS if action == _A_ALLOW else VERDICT_DROP
            size = length[p]
            for t in range(n_trail):
                packets[orig[trail[t]]] += 1
                nbytes[orig[trail[t]]] += size
            packets[orig[i]] += 1
            nbytes[orig[i]] += size
            break


# Rule-major form: each rule one pass per condition over the packets still undecided (a list of
# packet indexes), narrowing the candidates; the passes are small per-rule calls, so the per
# packet work is one tight loop per condition the rule actually tests.


@numba.njit(nogil=True, cache=True)
def _keep_eq(col: Any, cand: Any, src: Any, k: int, value: int) -> int:  # pragma: no cover
    j = 0
    for q in range(k):
        p = src[q]
        cand[j] = p
        j += 1 if col[p] == value else 0
    return j


@numba.njit(nogil=True, cache=True)
def _keep_le(col: Any, cand: Any, src: Any, k: int, value: int) -> int:  # pragma: no cover
    j = 0
    for q in range(k):
        p = src[q]
        cand[j] = p
        j += 1 if col[p] <= value else 0
    return j


@numba.njit(nogil=True, cache=True)
def _keep_nonzero(col: Any, cand: Any, src: Any, k: int, negate: bool) -> int:  # pragma: no cover
    j = 0
    for q in range(k):
        p = src[q]
        cand[j] = p
        j += 1 if (col[p] != 0) != negate else 0
    return j


@numba.njit(nogil=True, cache=True)
def _keep_range(col: Any, cand: Any, src: Any, k: int, lo: int, hi: int) -> int:  # pragma: no cover
    j = 0
    for q in range(k):
        p = src[q]
        cand[j] = p
        v = col[p]
        j += 1 if lo <= v and v <= hi else 0
    return j


@numba.njit(nogil=True, cache=True)
def _keep_ranges(
    col: Any, cand: Any, src: Any, k: int, ranges: Any, off: int, cnt: int
) -> int:  # pragma: no cover
    """Ports: present (>= 0) and in one of ``ranges[off:off + cnt]``."""
    if cnt == 1:
        lo = max(ranges[off, 0], 0)
        return _keep_range(col, cand, src, k, lo, ranges[off, 1])
    j = 0
    for q in range(k):
        p = src[q]
        v = col[p]
        hit = False
        if v >= 0:
            for r in range(off, off + cnt):
                if ranges[r, 0] <= v <= ranges[r, 1]:
                    hit = True
                    break
        cand[j] = p
        j += 1 if hit else 0
    return j


@numba.njit(nogil=True, cache=True)
def _keep_addr(
    col: Any, cand: Any, src: Any, k: int, addrs: Any, off: int, cnt: int, negate: bool
) -> int:  # pragma: no cover
    """Addresses in (or, negated, not in) the masks and ranges ``addrs[off:off + cnt]``."""
    j = 0
    if cnt == 1 and addrs[off, 0] == 0:
        mask, value = addrs[off, 1], addrs[off, 2]
        for q in range(k):
            p = src[q]
            cand[j] = p
            j += 1 if ((col[p] & mask) == value) != negate else 0
        return j
    for q in range(k):
        p = src[q]
        a = col[p]
        hit = False
        for r in range(off, off + cnt):
            if addrs[r, 0] == 0:
                if a & addrs[r, 1] == addrs[r, 2]:
                    hit = True
                    break
            elif addrs[r, 1] <= a <= addrs[r, 2]:
                hit = True
                break
        cand[j] = p
        j += 1 if hit != negate else 0
    return j


@numba.njit(nogil=True, cache=True)
def _keep_flags(
    col: Any, cand: Any, src: Any, k: int, fset: int, fclear: int, fany: int
) -> int:  # pragma: no cover
    j = 0
    for q in range(k):
        p = src[q]
        f = col[p]
        ok = f >= 0 and f & fset == fset and f & fclear == 0 and (fany == 0 or f & fany != 0)
        cand[j] = p
        j += 1 if ok else 0
    return j


@numba.njit(nogil=True, cache=True)
def _keep_in(
    col: Any, cand: Any, src: Any, k: int, values: Any, off: int, cnt: int
) -> int:  # pragma: no cover
    j = 0
    for q in range(k):
        p = src[q]
        v = col[p]
        hit = False
        for r in range(off, off + cnt):
            if values[r] == v:
                hit = True
                break
        cand[j] = p
        j += 1 if hit else 0
    return j


@numba.njit(nogil=True, cache=True)
def _evaluate_rules_kernel(
    rules: Any,
    orig: Any,
    addrs: Any,
    ports: Any,
    icmp: Any,
    ext: Any,
    direction: int,
    src: Any,
    dst: Any,
    proto: Any,
    sport: Any,
    dport: Any,
    tcp_flags: Any,
    icmp_type: Any,
    ttl: Any,
    length: Any,
    fragment: Any,
    ifindex: Any,
    in_state: Any,
    verdict: Any,
    packets: Any,
    nbytes: Any,
) -> None:  # pragma: no cover - compiled
    """:func:`_evaluate_kernel`'s verdicts and counters, rule by rule: ``idx`` lists the packets
    still undecided (in order); each rule narrows a copy of it condition by condition (most
    selective first: ports, addresses, then the rest) to the packets it matches, decides those,
    and the decided ones leave ``idx``.  ``skipto`` moves a packet's position (``pos``) forward;
    count and skipto matches are kept as (rule, packet) pairs and counted at the end for the
    packets not punted, as the per-packet walk counts its trail."""
    n = src.shape[0]
    n_rules = rules.shape[0]
    idx = np.empty(n, np.int64)
    cand = np.empty(n, np.int64)
    m = 0
    for p in range(n):
        if in_state[p]:
            verdict[p] = VERDICT_PUNT
        else:
            idx[m] = p
            m += 1
    has_skip = False
    for i in range(n_rules):
        if rules[i, _R_ACTION] == _A_SKIPTO:
            has_skip = True
    pos = np.zeros(n if has_skip else 0, np.int64)
    trail_rule = np.empty(16, np.int64)
    trail_pkt = np.empty(16, np.int64)
    n_trail = 0
    for i in range(n_rules):
        if m == 0:
            break
        # conditions decided for the whole call
        d = rules[i, _R_DIR]
        if d >= 0 and direction != d:
            continue
        if rules[i, _R_RECV] != _NONE and direction == _DIR_OUT:
            continue
        if rules[i, _R_XMIT] != _NONE and direction != _DIR_OUT:
            continue
        if (rules[i, _R_SRC_KIND] == _K_ALL and rules[i, _R_SRC_NEG] != 0) or (
            rules[i, _R_DST_KIND] == _K_ALL and rules[i, _R_DST_NEG] != 0
        ):
            continue
        # per-packet conditions; the first pass reads idx, the others narrow cand in place
        k = m
        first = True
        if has_skip:
            k = _keep_le(pos, cand, idx, k, i)
            first = False
        cnt = rules[i, _R_DP_CNT]
        if cnt and k:
            k = _keep_ranges(
                dport, cand, idx if first else cand, k, ports, rules[i, _R_DP_OFF], cnt
            )
            first = False
        cnt = rules[i, _R_SP_CNT]
        if cnt and k:
            k = _keep_ranges(
                sport, cand, idx if first else cand, k, ports, rules[i, _R_SP_OFF], cnt
            )
            first = False
        for side in range(2):
            base = _R_DST_KIND if side == 0 else _R_SRC_KIND
            kind = rules[i, base]
            if k == 0 or kind == _K_NONE or kind == _K_ALL:  # noqa: SIM109 - numba
                continue
            col = dst if side == 0 else src
            neg = rules[i, base + 1] != 0
            if kind == _K_LIST:
                k = _keep_addr(
                    col, cand, idx if first else cand, k, addrs, rules[i, base + 2],
                    rules[i, base + 3], neg,
                )  # fmt: skip
            else:
                k = _keep_nonzero(ext[rules[i, base + 2]], cand, idx if first else cand, k, neg)
            first = False
        cnt = rules[i, _R_IC_CNT]
        if cnt and k:
            k = _keep_in(icmp_type, cand, idx if first else cand, k, icmp, rules[i, _R_IC_OFF], cnt)
            first = False
        fset, fclear, fany = rules[i, _R_FSET], rules[i, _R_FCLEAR], rules[i, _R_FANY]
        if (fset or fclear or fany) and k:
            k = _keep_flags(tcp_flags, cand, idx if first else cand, k, fset, fclear, fany)
            first = False
        lo = rules[i, _R_TTL_LO]
        if lo >= 0 and k:
            k = _keep_range(ttl, cand, idx if first else cand, k, lo, rules[i, _R_TTL_HI])
            first = False
        if rules[i, _R_FRAG] and k:
            k = _keep_nonzero(fragment, cand, idx if first else cand, k, False)
            first = False
        v = rules[i, _R_PROTO]
        if v >= 0 and k:
            k = _keep_eq(proto, cand, idx if first else cand, k, v)
            first = False
        for col_id in (_R_RECV, _R_XMIT, _R_VIA):
            v = rules[i, col_id]
            if v != _NONE and k:
                k = _keep_eq(ifindex, cand, idx if first else cand, k, v)
                first = False
        if k == 0:
            continue
        matched = idx if first else cand
        # rule i matches matched[:k]
        action = rules[i, _R_ACTION]
        if action == _A_COUNT or action == _A_SKIPTO:  # noqa: SIM109 - numba
            punts = rules[i, _R_PUNTS] != 0
            if not punts:
                if n_trail + k > trail_rule.shape[0]:
                    size = max(2 * trail_rule.shape[0], n_trail + k)
                    grown_r = np.empty(size, np.int64)
                    grown_p = np.empty(size, np.int64)
                    grown_r[:n_trail] = trail_rule[:n_trail]
                    grown_p[:n_trail] = trail_pkt[:n_trail]
                    trail_rule, trail_pkt = grown_r, grown_p
                target = rules[i, _R_TARGET]
                for q in range(k):
                    p = matched[q]
                    trail_rule[n_trail] = i
                    trail_pkt[n_trail] = p
                    n_trail += 1
                    if action == _A_SKIPTO:
                        pos[p] = target
                continue
        punts = rules[i, _R_PUNTS] != 0
        final = VERDICT_PASS if action == _A_ALLOW else VERDICT_DROP
        hits = 0
        size = 0
        for q in range(k):
            p = matched[q]
            if punts or (action == _A_RESET and proto[p] == 6):
                verdict[p] = VERDICT_PUNT
            else:
                verdict[p] = final
                hits += 1
                size += length[p]
        packets[orig[i]] += hits
        nbytes[orig[i]] += size
        # the decided packets leave idx
        j = 0
        for q in range(m):
            p = idx[q]
            idx[j] = p
            j += 1 if verdict[p] == _UNDECIDED else 0
        m = j
    for q in range(m):  # unreachable: the default rule matches everything
        verdict[idx[q]] = VERDICT_PUNT
    for t in range(n_trail):
        p = trail_pkt[t]
        if verdict[p] != VERDICT_PUNT:
            packets[orig[trail_rule[t]]] += 1
            nbytes[orig[trail_rule[t]]] += length[p]


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


# -- the ruleset ---------------------------------------------------------------------------------

_COLUMNS = ("src", "dst", "proto", "sport", "dport", "tcp_flags", "icmp_type", "ttl", "length")


@dataclass(frozen=True, slots=True)
class RuleCounter:
    number: int
    packets: int
    bytes: int
    rule: Rule


class Ruleset:
    """Rules compiled for evaluation, with counters and dynamic state.

    Parameters
    ----------
    rules:
        Rules in increasing number order (the default rule is added).
    tables:
        Named tables (a :class:`~netfast.route.rib.Rib` each; values are shown, not matched).
    default_allow:
        The default rule 65535 allows instead of denying.
    me:
        The addresses ``me`` stands for (the router's own).
    interfaces:
        Interface name -> ifindex, for ``via``/``recv``/``xmit``.
    max_states, timeouts:
        Bound and lifetimes of the dynamic state table.
    reply_source:
        Source address of ICMP unreachables (default: the offending packet's destination).
    log_size:
        Lines of ``log`` kept.
    """

    def __init__(
        self,
        rules: Sequence[Rule] = (),
        *,
        tables: Mapping[str, Rib] | None = None,
        default_allow: bool = False,
        me: Iterable[int] = (),
        interfaces: Mapping[str, int] | None = None,
        max_states: int = 4096,
        timeouts: StateTimeouts | None = None,
        reply_source: int | None = None,
        log_size: int = 1000,
    ) -> None:
        last = 0
        for rule in rules:
            if not last < rule.number <= MAX_RULE:
                raise ValueError(f"rule {rule.number} after {last}: numbers must increase")
            if rule.action is Action.SKIPTO and rule.arg <= rule.number:
                raise ValueError(f"rule {rule.number} skips backwards to {rule.arg}")
            for spec in (rule.src, rule.dst):
                if spec.kind == "table" and spec.table not in (tables or {}):
                    raise ValueError(f"rule {rule.number} uses unknown table {spec.table!r}")
            last = rule.number
        if max_states < 0:
            raise ValueError(f"max_states must be >= 0, got {max_states}")
        self.default_allow = default_allow
        self.rules: list[Rule] = [
            *rules,
            Rule(DEFAULT_RULE, Action.ALLOW if default_allow else Action.DENY),
        ]
        self.ribs: dict[str, Rib] = dict(tables or {})
        self.tables: dict[str, RoutingTable] = {
            name: RoutingTable(rib, "dxr") for name, rib in self.ribs.items()
        }
        self.me: frozenset[int] = frozenset(me)
        self.interfaces: dict[str, int] = dict(interfaces or {})
        self.max_states = max_states
        self.timeouts = timeouts if timeouts is not None else StateTimeouts()
        self.reply_source = reply_source
        #: The current time in seconds, set by the caller (see the module docstring).
        self.now = 0.0
        self.packets: npt.NDArray[np.int64] = np.zeros(len(self.rules), np.int64)
        self.bytes: npt.NDArray[np.int64] = np.zeros(len(self.rules), np.int64)
        self.stats: Counter[str] = Counter()
        self.log: deque[str] = deque(maxlen=log_size)
        self.states: dict[StateKey, _State] = {}
        # Expiry order: (expiry time when pushed, sequence, key).  A state's expiry only moves
        # later (a hit refreshes it), so an entry found refreshed when popped is pushed again;
        # reclaiming touches only what has expired, never the whole table.
        self._expiry: list[tuple[float, int, StateKey]] = []
        self._expiry_seq = 0
        self._rule_states = [0] * len(self.rules)
        self._state_hashes: npt.NDArray[np.uint64] = np.zeros(0, np.uint64)
        self._hashes_stale = False
        #: evaluate_batch walks the rules per packet in a kernel when at most this many rules
        #: can match the batch, else builds numpy masks rule by rule (faster for long rulesets;
        #: measured with netfast bench forward).  Both give the same verdicts and counters.
        self.kernel_max_rules = KERNEL_MAX_RULES
        #: The kernel walks rule by rule over the undecided packets (True, the fast form) or
        #: packet by packet over the rules (False: the reference the tests compare it with).
        self.rule_major = True
        #: The scalar path walks rules through code generated per direction and protocol
        #: (True) or tests every rule in turn (False: the reference).
        self.scalar_dispatch = True
        self._compile()

    # -- configuration --
    def _compile(self) -> None:
        numbers = [r.number for r in self.rules]
        compiled = []
        for i, rule in enumerate(self.rules):
            target = 0
            if rule.action is Action.SKIPTO:
                target = next(j for j, n in enumerate(numbers) if n >= rule.arg)
            compiled.append(_Compiled(i, rule, target, self.tables, self.me, self.interfaces))
        self._compiled = compiled
        self._has_skipto = any(c.action == _A_SKIPTO for c in compiled)
        self._has_keep_state = any(r.keep_state for r in self.rules)
        self._table = _RuleTable(compiled)
        # per direction: protocol -> walkers, built on first use (_walkers_for)
        self._walkers: list[dict[int, tuple[Walker, Walker]]] = [{} for _ in Direction]
        self._protos = frozenset(c.proto for c in compiled if c.proto >= 0)

    def set_me(self, addrs: Iterable[int]) -> None:
        """Change the addresses ``me`` stands for (recompiles; counters and states stay)."""
        self.me = frozenset(addrs)
        self._compile()

    def set_interfaces(self, interfaces: Mapping[str, int]) -> None:
        """Change the interface name -> ifindex map (recompiles; counters and states stay)."""
        self.interfaces = dict(interfaces)
        self._compile()

    def add_table(self, name: str, rib: Rib) -> None:
        """Add or replace a named table (e.g. ``load_table(path).rib``)."""
        self.ribs[name] = rib
        self.tables[name] = RoutingTable(rib, "dxr")
        self._compile()

    # -- counters --
    @property
    def counters(self) -> list[RuleCounter]:
        """Packets and bytes per rule, the default rule last."""
        return [
            RuleCounter(r.number, int(p), int(b), r)
            for r, p, b in zip(self.rules, self.packets, self.bytes, strict=True)
        ]

    def counter(self, number: int) -> tuple[int, int]:
        """``(packets, bytes)`` of rule ``number``."""
        for i, rule in enumerate(self.rules):
            if rule.number == number:
                return int(self.packets[i]), int(self.bytes[i])
        raise KeyError(f"no rule {number}")

    def reset_counters(self) -> None:
        self.packets[:] = 0
        self.bytes[:] = 0
        self.stats.clear()

    def counter_snapshot(self) -> object:
        """The rule counters and state statistics as they are now (see
        :class:`netfast.pfil.BatchHook`)."""
        return self.packets.copy(), self.bytes.copy(), self.stats.copy()

    def counter_restore(self, snapshot: object) -> None:
        """Put back what :meth:`counter_snapshot` returned."""
        assert isinstance(snapshot, tuple)
        packets, nbytes, stats = snapshot
        self.packets[...] = packets
        self.bytes[...] = nbytes
        self.stats.clear()
        self.stats.update(stats)

    # -- text --
    def text(self) -> str:
        """The ruleset as a normalized rule file (tables first, the default rule last); parsing
        it gives the same rules and tables."""
        lines = []
        for name, rib in self.ribs.items():
            for net, plen, value in _rib_entries(rib):
                suffix = "" if value is None else f" {value}"
                lines.append(f"table {name} add {format_prefix(net, plen)}{suffix}")
        lines += [str(r) for r in self.rules]
        return "\n".join(lines) + "\n"

    def show(self) -> str:
        """Rules with their counters, one per line, as ``ipfw show`` prints them."""
        return "".join(
            f"{c.number:05d} {c.packets:>10} {c.bytes:>12} {str(c.rule)[6:]}\n"
            for c in self.counters
        )

    # -- scalar evaluation --
    def __call__(self, pkt: PfilPacket) -> Verdict:
        """The pfil hook (a :class:`netfast.pfil.BatchHook`): :meth:`evaluate` at ``self.now``."""
        return self.evaluate(pkt, self.now)

    hook = __call__

    def evaluate(self, pkt: PfilPacket, now: float | None = None) -> Verdict:
        """First matching rule's verdict for one packet; counts it; may set ``pkt.replies``."""
        if now is None:
            now = self.now
        if self.states:
            key = _state_key(pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport)
            state = self.states.get(key)
            if state is not None:
                if state.expire > now:
                    return self._from_state(pkt, state, now)
                self._remove_state(key)
        compiled = self._compiled
        if self.scalar_dispatch:
            walkers = self._walkers[pkt.direction].get(pkt.proto)
            if walkers is None:
                walkers = self._walkers_for(pkt.direction, pkt.proto)
            first, after = walkers
        else:
            first = after = self._reference_walk
        i = first(pkt, 0)
        while True:
            c = compiled[i]
            self.packets[i] += 1
            self.bytes[i] += pkt.length
            if c.rule.log:
                self._log(c.rule, pkt)
            action = c.action
            if action == _A_COUNT:
                i = after(pkt, i + 1)
                continue
            if action == _A_SKIPTO:
                i = after(pkt, c.target)
                continue
            if c.rule.keep_state and not self._create_state(pkt, c, now):
                return Verdict.DROP
            return self._act(pkt, c)

    def _walkers_for(self, direction: int, proto: int) -> tuple[Walker, Walker]:
        """The generated walkers of packets of ``proto`` at ``direction`` (every protocol no
        rule names shares one pair)."""
        table = self._walkers[direction]
        key = proto if proto in self._protos else -1
        walkers = table.get(key)
        if walkers is None:
            walkers = table[key] = _build_walkers(self._compiled, int(direction), key)
        table[proto] = walkers
        return walkers

    def _reference_walk(self, pkt: PfilPacket, start: int) -> int:
        """The first rule at or after ``start`` matching ``pkt``, every rule tested in turn
        (what the generated walkers must agree with)."""
        compiled = self._compiled
        i = start
        while not compiled[i].match(pkt):
            i += 1
        return i

    def _act(self, pkt: PfilPacket, c: _Compiled) -> Verdict:
        action = c.action
        if action == _A_ALLOW:
            return Verdict.PASS
        if action == _A_RESET:
            reply = tcp_reset_for(pkt)
            if reply is not None:
                self._reply(pkt, reply, "ipfw.reset.sent")
        elif action == _A_UNREACH:
            source = self.reply_source if self.reply_source is not None else pkt.dst
            reply = icmp_unreach_for(pkt, c.rule.arg, source)
            if reply is not None:
                self._reply(pkt, reply, "ipfw.unreach.sent")
        return Verdict.DROP

    def _reply(self, pkt: PfilPacket, reply: bytes, counter: str) -> None:
        if pkt.replies is None:
            pkt.replies = []
        pkt.replies.append(reply)
        self.stats[counter] += 1

    def _log(self, rule: Rule, pkt: PfilPacket) -> None:
        proto = _PROTO_BY_NUMBER.get(pkt.proto, str(pkt.proto)).upper()
        if pkt.sport >= 0:
            ends = f"{ip_to_str(pkt.src)}:{pkt.sport} {ip_to_str(pkt.dst)}:{pkt.dport}"
        else:
            ends = f"{ip_to_str(pkt.src)} {ip_to_str(pkt.dst)}"
        direction = pkt.direction.name.lower()
        self.log.append(
            f"{self.now:.6f} ipfw: {rule.number} {rule.action.value} {proto} {ends} "
            f"{direction} via {pkt.ifindex}"
        )
        self.stats["ipfw.logged"] += 1

    # -- dynamic state --
    def _timeout(self, state: _State) -> float:
        if not state.tcp:
            return self.timeouts.other
        return self.timeouts.tcp_established if state.replied else self.timeouts.tcp_opening

    def _from_state(self, pkt: PfilPacket, state: _State, now: float) -> Verdict:
        if (pkt.src, _flow_ports(pkt.proto, pkt.sport, pkt.dport)[0]) != state.origin:
            state.replied = True
        state.expire = now + self._timeout(state)
        i = state.rule
        self.packets[i] += 1
        self.bytes[i] += pkt.length
        self.stats["ipfw.state.hit"] += 1
        c = self._compiled[i]
        if c.rule.log:
            self._log(c.rule, pkt)
        return self._act(pkt, c)

    def _create_state(self, pkt: PfilPacket, c: _Compiled, now: float) -> bool:
        """Record a state for ``pkt``; False (counted) when the table or the rule is full."""
        if len(self.states) >= self.max_states:
            self._expire(now)
            if len(self.states) >= self.max_states:
                self.stats["ipfw.state.full"] += 1
                return False
        if c.rule.limit and self._rule_states[c.index] >= c.rule.limit:
            self._expire(now)
            if self._rule_states[c.index] >= c.rule.limit:
                self.stats["ipfw.state.limit"] += 1
                return False
        key = _state_key(pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport)
        origin = (pkt.src, _flow_ports(pkt.proto, pkt.sport, pkt.dport)[0])
        state = _State(c.index, 0.0, origin, pkt.proto == IpProtocol.TCP)
        state.expire = now + self._timeout(state)
        self.states[key] = state
        self._expiry_seq += 1
        heapq.heappush(self._expiry, (state.expire, self._expiry_seq, key))
        self._rule_states[c.index] += 1
        self._hashes_stale = True
        self.stats["ipfw.state.created"] += 1
        return True

    def _remove_state(self, key: StateKey) -> None:
        state = self.states.pop(key)
        self._rule_states[state.rule] -= 1
        self._hashes_stale = True
        self.stats["ipfw.state.expired"] += 1

    def _expire(self, now: float) -> int:
        """Remove every expired state, the longest expired first; returns how many."""
        heap = self._expiry
        removed = 0
        while heap and heap[0][0] <= now:
            _, _, key = heapq.heappop(heap)
            state = self.states.get(key)
            if state is None:
                continue  # removed already; a stale heap entry
            if state.expire > now:  # refreshed since it was pushed
                self._expiry_seq += 1
                heapq.heappush(heap, (state.expire, self._expiry_seq, key))
                continue
            self._remove_state(key)
            removed += 1
        return removed

    def expire_states(self, now: float | None = None) -> int:
        """Reclaim expired states now (the router may call this from its poll)."""
        return self._expire(self.now if now is None else now)

    # -- vector evaluation --
    def evaluate_batch(
        self,
        cols: Mapping[str, npt.NDArray[np.integer]],
        direction: Direction | int,
        ifindex: npt.NDArray[np.integer] | int,
    ) -> npt.NDArray[np.uint8]:
        """Verdicts of a whole batch: 0 PASS, 1 DROP, 3 PUNT (see the module docstring).

        ``cols`` holds equal-length integer arrays ``src``, ``dst``, ``proto``, ``sport``,
        ``dport``, ``tcp_flags``, ``icmp_type``, ``ttl``, ``length`` (``-1`` where absent) and,
        optionally, ``fragment`` (nonzero for fragments; absent means none is).  ``ifindex`` is
        one interface index per packet, or one for all.
        """
        n = len(cols["src"])
        verdict = np.full(n, _UNDECIDED, np.uint8)
        if n == 0:
            return verdict
        work = {
            k: np.ascontiguousarray(cols[k], np.int64) if k in cols else np.full(n, -1, np.int64)
            for k in _COLUMNS
        }
        frag = cols.get("fragment")
        fragment = np.zeros(n, np.uint8) if frag is None else (np.asarray(frag) != 0).view(np.uint8)
        ifx = np.ascontiguousarray(np.broadcast_to(np.asarray(ifindex), (n,)), np.int64)
        if self.states:
            in_state = self._from_states_batch(work, verdict)
        else:
            in_state = np.zeros(n, np.bool_)
        t = self._table
        direction = int(direction)
        table, orig = t.live(direction, np.bincount(np.clip(work["proto"], 0, 256), minlength=257))
        if len(orig) > self.kernel_max_rules:
            return self._evaluate_masks(cols, direction, ifindex, verdict, in_state)
        by_state = verdict[in_state]  # the kernel answers PUNT for these; put them back after
        ext = np.empty((len(t.ext), n), np.uint8)
        for j, (match, column) in enumerate(t.ext):
            ext[j] = match.vmatch_raw(cols[column])
        kernel = _evaluate_rules_kernel if self.rule_major else _evaluate_kernel
        kernel(
            table,
            orig,
            t.addrs,
            t.ports,
            t.icmp,
            ext,
            direction,
            work["src"],
            work["dst"],
            work["proto"],
            work["sport"],
            work["dport"],
            work["tcp_flags"],
            work["icmp_type"],
            work["ttl"],
            work["length"],
            fragment,
            ifx,
            in_state.view(np.uint8),
            verdict,
            self.packets,
            self.bytes,
        )
        verdict[in_state] = by_state
        return verdict

    def _from_states_batch(
        self, work: Mapping[str, npt.NDArray[np.int64]], verdict: npt.NDArray[np.uint8]
    ) -> npt.NDArray[np.bool_]:
        """The dynamic-state check of :meth:`evaluate` for a batch, before its rule walk: the
        rows whose state-key hash is in the table are probed one by one (a minority in real
        traffic); a live state decides its row as :meth:`_from_state` does -- refresh, counters,
        the creating rule's verdict -- or punts it when that rule logs or sends a reply.  A row
        of an expired state is punted (the scalar path removes the state and walks the rules,
        in packet order); a row whose key is not in the table (a hash collision) goes on to the
        rules.  Returns the rows decided or punted here (their ``verdict`` set).

        Besides ``packets`` and ``bytes`` this changes ``stats`` and the states' expiry: a caller
        that rolls counters back to re-run a batch must roll ``stats`` back too (the refresh
        gives the same states when re-run at the same ``now``)."""
        handled = np.isin(_vkey_hash(work), self._hashes())
        rows = np.flatnonzero(handled)
        if len(rows) == 0:
            return handled
        now = self.now
        states = self.states
        compiled = self._compiled
        timeouts = self.timeouts
        packets, nbytes = self.packets, self.bytes
        per_rule: dict[int, list[int]] = {}  # rule -> [packets, bytes] decided here
        for r, proto, src, sport, dst, dport, length in zip(
            rows.tolist(),
            work["proto"][rows].tolist(),
            work["src"][rows].tolist(),
            work["sport"][rows].tolist(),
            work["dst"][rows].tolist(),
            work["dport"][rows].tolist(),
            work["length"][rows].tolist(),
            strict=True,
        ):
            fsport, fdport = _flow_ports(proto, sport, dport)
            a, b = (src << 16) | fsport, (dst << 16) | fdport
            key = (
                (proto, a >> 16, a & 0xFFFF, b >> 16, b & 0xFFFF)
                if a <= b
                else (proto, b >> 16, b & 0xFFFF, a >> 16, a & 0xFFFF)
            )
            state = states.get(key)
            if state is None:
                handled[r] = False
                continue
            if state.expire <= now:
                # The scalar path removes it and walks the rules; punted, that happens in packet
                # order with the states the batch's earlier punted packets create.
                verdict[r] = VERDICT_PUNT
                continue
            c = compiled[state.rule]
            action = c.action
            if c.rule.log or not (
                action in (_A_ALLOW, _A_DENY) or (action == _A_RESET and proto != 6)
            ):
                verdict[r] = VERDICT_PUNT  # logging and replies are the scalar path's
                continue
            if (src, fsport) != state.origin:
                state.replied = True
            if not state.tcp:
                state.expire = now + timeouts.other
            elif state.replied:
                state.expire = now + timeouts.tcp_established
            else:
                state.expire = now + timeouts.tcp_opening
            i = state.rule
            counted = per_rule.get(i)
            if counted is None:
                per_rule[i] = [1, length]
            else:
                counted[0] += 1
                counted[1] += length
            verdict[r] = VERDICT_PASS if action == _A_ALLOW else VERDICT_DROP
        hits = 0
        for i, (count, size) in per_rule.items():
            packets[i] += count
            nbytes[i] += size
            hits += count
        if hits:
            self.stats["ipfw.state.hit"] += hits
        return handled

    def _evaluate_masks(
        self,
        cols: Mapping[str, npt.NDArray[np.integer]],
        direction: int,
        ifindex: npt.NDArray[np.integer] | int,
        verdict: npt.NDArray[np.uint8],
        in_state: npt.NDArray[np.bool_],
    ) -> npt.NDArray[np.uint8]:
        """Rule-major form for long rulesets: every rule a boolean mask over the packets still
        undecided (numpy's per-element cost beats the kernel's per-rule walk there)."""
        n = len(verdict)
        length = np.asarray(cols["length"])
        work = {k: np.asarray(cols[k]) for k in _COLUMNS if k in cols}
        work["fragment"] = (
            np.asarray(cols["fragment"]) if "fragment" in cols else np.zeros(n, np.bool_)
        )
        work["ifindex"] = np.broadcast_to(np.asarray(ifindex), (n,))
        idx = np.arange(n)
        alive = ~in_state  # decided or punted by the state check already
        nalive = int(alive.sum())
        pos = np.zeros(n, np.int32) if self._has_skipto else None
        deferred: list[tuple[int, npt.NDArray[np.intp]]] = []  # count/skipto: counted at the end
        direction = int(direction)
        for c in self._compiled:
            if nalive == 0:
                break
            if 4 * nalive < len(idx) and len(idx) > 1024:
                # Few left: shrink the working set so later rules touch fewer packets.
                idx, work, alive, pos = _compact(idx, work, alive, pos)
            cand = alive if pos is None else alive & (pos <= c.index)
            m = c.vmatch(work, direction, work["ifindex"], cand)
            hit = np.flatnonzero(m)
            if len(hit) == 0:
                continue
            g = idx[hit]
            action = c.action
            if c.punts or action == _A_RESET:
                if action == _A_RESET and not c.punts:
                    tcp = work["proto"][hit] == IpProtocol.TCP
                    verdict[g[tcp]] = VERDICT_PUNT
                    dropped = g[~tcp]
                    verdict[dropped] = VERDICT_DROP
                    self._count(c.index, dropped, length)
                else:
                    verdict[g] = VERDICT_PUNT
                alive[hit] = False
                nalive -= len(hit)
            elif action == _A_COUNT:
                deferred.append((c.index, g))
            elif action == _A_SKIPTO:
                deferred.append((c.index, g))
                assert pos is not None
                pos[hit] = c.target
            else:
                verdict[g] = VERDICT_PASS if action == _A_ALLOW else VERDICT_DROP
                self._count(c.index, g, length)
                alive[hit] = False
                nalive -= len(hit)
        for i, g in deferred:
            self._count(i, g[verdict[g] != VERDICT_PUNT], length)
        return verdict

    def _count(self, i: int, rows: npt.NDArray[np.intp], length: npt.NDArray[np.integer]) -> None:
        if len(rows):
            self.packets[i] += len(rows)
            self.bytes[i] += int(length[rows].sum())

    def _hashes(self) -> npt.NDArray[np.uint64]:
        if self._hashes_stale:
            self._state_hashes = np.array(sorted(_key_hash(k) for k in self.states), np.uint64)
            self._hashes_stale = False
        return self._state_hashes


def _compact(
    idx: npt.NDArray[np.intp],
    work: dict[str, npt.NDArray[np.integer]],
    alive: npt.NDArray[np.bool_],
    pos: npt.NDArray[np.int32] | None,
) -> tuple[
    npt.NDArray[np.intp],
    dict[str, npt.NDArray[np.integer]],
    npt.NDArray[np.bool_],
    npt.NDArray[np.int32] | None,
]:
    keep = np.flatnonzero(alive)
    return (
        idx[keep],
        {k: v[keep] for k, v in work.items()},
        np.ones(len(keep), np.bool_),
        None if pos is None else pos[keep],
    )


def _rib_entries(rib: Rib) -> list[tuple[int, int, object]]:
    out = []
    for rid in range(rib.route_count):
        if rib.alive[rid]:
            out.append((int(rib.net[rid]), int(rib.plen[rid]), rib.value_of(rid)))
    return out


# -- replies -------------------------------------------------------------------------------------

_U32 = struct.Struct("!I")


def tcp_reset_for(pkt: PfilPacket) -> bytes | None:
    """The RST answering ``pkt`` (RFC 793 "Reset Generation"), or None when it gets none: not
    TCP, a RST itself, a fragment without the TCP header, a multicast/broadcast destination."""
    data = bytes(pkt.data)
    if pkt.proto != IpProtocol.TCP or len(data) < 20 or pkt.tcp_flags < 0:
        return None
    if pkt.tcp_flags & TcpFlags.RST or _not_unicast(pkt.dst) or _not_unicast(pkt.src):
        return None
    ihl = (data[0] & 0x0F) * 4
    tcp = data[ihl:]
    if len(tcp) < 20:
        return None
    total = int.from_bytes(data[2:4], "big")
    offset = (tcp[12] >> 4) * 4
    seq = _U32.unpack_from(tcp, 4)[0]
    ack = _U32.unpack_from(tcp, 8)[0]
    flags = pkt.tcp_flags
    seg_len = max(0, total - ihl - offset) + bool(flags & TcpFlags.SYN) + bool(flags & TcpFlags.FIN)
    if flags & TcpFlags.ACK:
        rst = TcpRepr(pkt.dport, pkt.sport, ack, 0, TcpFlags.RST, 0)
    else:
        rst = TcpRepr(
            pkt.dport, pkt.sport, 0, (seq + seg_len) & 0xFFFFFFFF, TcpFlags.RST | TcpFlags.ACK, 0
        )
    segment = rst.to_bytes(pkt.dst, pkt.src)
    ip = Ipv4Repr(src=pkt.dst, dst=pkt.src, protocol=IpProtocol.TCP, payload_len=len(segment))
    return ip.to_bytes(segment)


def _not_unicast(addr: int) -> bool:
    return addr >= 0xE0000000 or addr == 0 or addr >> 24 == 127


def icmp_unreach_for(pkt: PfilPacket, code: int, source: int) -> bytes | None:
    """The ICMP destination unreachable answering ``pkt`` (quoting its IP header and 8 bytes of
    payload, RFC 792), or None where RFC 1812 4.3.2.7 forbids one."""
    data = bytes(pkt.data)
    if len(data) < 20 or _not_unicast(pkt.src) or _not_unicast(pkt.dst):
        return None
    frag_offset = int.from_bytes(data[6:8], "big") & 0x1FFF
    if frag_offset:
        return None
    if pkt.proto == IpProtocol.ICMP and (pkt.icmp_type < 0 or pkt.icmp_type in _ICMP_ERRORS):
        return None
    ihl = (data[0] & 0x0F) * 4
    total = int.from_bytes(data[2:4], "big")
    quote = data[: min(ihl + 8, total, len(data))]
    message = Icmpv4DestUnreachable(DestUnreachableCode(code), quote).to_bytes()
    ip = Ipv4Repr(src=source, dst=pkt.src, protocol=IpProtocol.ICMP, payload_len=len(message))
    return ip.to_bytes(message)
