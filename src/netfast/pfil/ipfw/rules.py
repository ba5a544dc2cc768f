"""Rule values: what a parsed rule is, independent of how it is matched.

:class:`Rule` (with :class:`Action`, :class:`AddrSpec`, :class:`AddrItem`) is a frozen value;
``str(rule)`` prints it in the normalized form the parser reads back to an equal rule.  Also the
names the language shares between parser, printer and log (protocols, TCP flags, ICMP types and
unreachable codes, :data:`SERVICES`) and the batch verdict codes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from netfast.pfil import Direction
from netfast.route.rib import format_prefix
from netfast.wire.ipv4 import ip_to_str
from netfast.wire.tcp import TcpFlags

DEFAULT_RULE = 65535
MAX_RULE = 65534
NUMBER_STEP = 100

#: evaluate_batch results (docs/ROUTER.md); 2 (CONSUMED) is never answered by the vector form.
VERDICT_PASS = 0
VERDICT_DROP = 1
VERDICT_PUNT = 3
_UNDECIDED = 255

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
