"""The ipfw-style firewall: parser, normalized printing, scalar semantics on scapy-built packets,
the vectorized form against the scalar one, keep-state, and the reset/unreach replies."""

from __future__ import annotations

import copy
import ipaddress

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.all import ICMP, IP, TCP, UDP, Raw  # type: ignore[import-untyped]
from scapy.layers.inet import IPerror, UDPerror  # type: ignore[import-untyped]
from tests.pfil.oracles import evaluate_masks, packet_major_kernel, use_reference_walk

from netfast.pfil import Direction, PfilPacket, Verdict
from netfast.pfil.ipfw import (
    Action,
    AddrItem,
    AddrSpec,
    FirewallError,
    Rule,
    Ruleset,
    StateTimeouts,
    parse_rule,
    parse_rules,
)
from netfast.route.rib import Rib

IN, FWD, OUT = Direction.IN, Direction.FORWARD, Direction.OUT


def ip(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def packet(scapy_pkt: IP, direction: Direction = IN, ifindex: int = 1) -> PfilPacket:
    """What the IN head sees of a scapy-built packet; every field read through scapy."""
    p = IP(bytes(scapy_pkt))
    pkt = PfilPacket(
        ifindex=ifindex,
        direction=direction,
        src=ip(p.src),
        dst=ip(p.dst),
        proto=p.proto,
        ttl=p.ttl,
        length=p.len,
        fragment=bool(p.flags.MF) or p.frag != 0,
        data=bytes(p),
    )
    if p.frag == 0:
        if TCP in p:
            pkt.sport, pkt.dport, pkt.tcp_flags = p[TCP].sport, p[TCP].dport, int(p[TCP].flags)
        elif UDP in p:
            pkt.sport, pkt.dport = p[UDP].sport, p[UDP].dport
        elif ICMP in p:
            pkt.icmp_type, pkt.icmp_code = p[ICMP].type, p[ICMP].code
    return pkt


def tcp(src: str = "198.18.0.1", dst: str = "198.19.0.1", sport: int = 40000, dport: int = 80,
        flags: str = "S", **kw: object) -> IP:  # fmt: skip
    return IP(src=src, dst=dst, **kw) / TCP(sport=sport, dport=dport, flags=flags, seq=1000)


def udp(src: str = "198.18.0.1", dst: str = "198.19.0.1", sport: int = 5353, dport: int = 53,
        **kw: object) -> IP:  # fmt: skip
    return IP(src=src, dst=dst, **kw) / UDP(sport=sport, dport=dport) / Raw(b"q" * 12)


def icmp(src: str = "198.18.0.1", dst: str = "198.19.0.1", type: int = 8, **kw: object) -> IP:
    return IP(src=src, dst=dst, **kw) / ICMP(type=type)


def verdict(rules: str | Ruleset, p: IP, direction: Direction = IN, ifindex: int = 1) -> Verdict:
    rs = parse_rules(rules) if isinstance(rules, str) else rules
    return rs.evaluate(packet(p, direction, ifindex))


# -- parser --------------------------------------------------------------------------------------


def test_every_address_form() -> None:
    r = parse_rule(
        "allow ip from { 10.1.2.3, 10.0.0.0/8, 10.9.8.7:255.0.255.0, 10.0.0.5-10.0.0.9 } to not me"
    )
    assert r.src == AddrSpec(
        "list",
        (
            AddrItem("host", ip("10.1.2.3")),
            AddrItem("prefix", ip("10.0.0.0"), 8),
            AddrItem("mask", ip("10.0.8.0"), ip("255.0.255.0")),
            AddrItem("range", ip("10.0.0.5"), ip("10.0.0.9")),
        ),
    )
    assert r.dst == AddrSpec("me", negate=True)
    # host bits beyond a prefix length are masked off, as ipfw does
    assert parse_rule("deny ip from 10.1.2.3/16 to any").src.items == (
        AddrItem("prefix", ip("10.1.0.0"), 16),
    )
    assert parse_rules("table t add 1.0.0.0/8\ndeny ip from any to not table(t)").rules[
        0
    ].dst == AddrSpec("table", table="t", negate=True)


def test_actions_protocols_ports_and_options() -> None:
    for word in ("allow", "accept", "pass", "permit"):
        assert parse_rule(f"{word} ip from any to any").action is Action.ALLOW
    for word in ("deny", "drop"):
        assert parse_rule(f"{word} all from any to any").action is Action.DENY
    r = parse_rule("unreach filter-prohib udp from any to any")
    assert (r.action, r.arg, r.proto) == (Action.UNREACH, 13, 17)
    assert parse_rule("unreach 7 ip from any to any").arg == 7
    assert parse_rule("100 skipto 300 ip from any to any").arg == 300
    r = parse_rule(
        "42 reset log tcp from any 1024-65535 to 1.2.3.4 http,https,8000-8080 in recv em0 "
        "via em1 setup tcpflags syn,!ack,ece ttl 1-64 keep-state limit 5 frag",
    )
    assert r == Rule(
        42,
        Action.RESET,
        AddrSpec(),
        AddrSpec("list", (AddrItem("host", ip("1.2.3.4")),)),
        proto=6,
        sport=((1024, 65535),),
        dport=((80, 80), (443, 443), (8000, 8080)),
        log=True,
        direction=IN,
        recv="em0",
        via="em1",
        setup=True,
        flags_set=0x02 | 0x40,
        flags_clear=0x10,
        ttl=(1, 64),
        keep_state=True,
        limit=5,
        frag=True,
    )
    r = parse_rule("count icmp from any to any icmptypes echo-request, 0,11 out xmit eth1 ttl 9")
    assert (r.icmptypes, r.direction, r.xmit, r.ttl) == ((0, 8, 11), OUT, "eth1", (9, 9))
    assert parse_rule("allow 47 from any to any").proto == 47
    assert parse_rule("allow tcp from any to any established").established


def test_auto_numbering_and_comments() -> None:
    rs = parse_rules(
        "# header\n\nallow ip from any to any  # first\n250 deny ip from any to any\n"
        "count ip from any to any\n"
    )
    assert [r.number for r in rs.rules] == [100, 250, 350, 65535]
    assert [r.line for r in rs.rules[:3]] == [3, 4, 5]


def test_default_rule() -> None:
    assert parse_rules("").rules == [Rule(65535, Action.DENY)]
    assert parse_rules("", default_allow=True).rules == [Rule(65535, Action.ALLOW)]
    assert parse_rules("65535 allow ip from any to any").default_allow


SAMPLE = """
table nets add 192.0.2.0/24 office
table nets add 198.51.100.7
allow tcp from table(nets) to any 22 setup keep-state
skipto 1000 ip from not { 10.0.0.0/8, 172.16.0.0:255.240.0.0 } to any in
deny log udp from any to me 137-139
unreach port udp from any to any
1000 reset tcp from 1.1.1.1-1.1.1.9 to any tcpflags fin,!syn
count icmp from any to any icmptypes 3,8 ttl 0-1 frag via lo0
"""


def test_ruleset_text_round_trips() -> None:
    rs = parse_rules(SAMPLE, me=[1])
    again = parse_rules(rs.text())
    assert again.rules == rs.rules
    assert again.text() == rs.text()
    assert "table nets add 198.51.100.7/32" in rs.text()


# Random rules, as text, to check that printing normalizes and parses back to the same rule.
_quads = st.integers(0, 2**32 - 1).map(lambda a: str(ipaddress.IPv4Address(a)))


_HOSTS = [ip(a) for a in ("10.0.0.1", "10.1.2.3", "198.18.0.1", "198.19.7.7", "192.0.2.1")]
#: Addresses near the packets' hosts, so random rules match random packets often.
_near_hosts = st.builds(
    lambda h, d: str(ipaddress.IPv4Address((h + d) % 2**32)),
    st.sampled_from(_HOSTS),
    st.integers(-3, 3),
)
_PORTS = [0, 1, 2, 22, 53, 80, 443, 8080, 65535]


@st.composite
def addr_items(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["host", "prefix", "mask", "range"]))
    a = draw(st.one_of(_quads, _near_hosts))
    if kind == "host":
        return a
    if kind == "prefix":
        return f"{a}/{draw(st.integers(0, 32))}"
    if kind == "mask":
        return f"{a}:{draw(_quads)}"
    lo, hi = sorted([ip(a), ip(draw(st.one_of(_quads, _near_hosts)))])
    return f"{ipaddress.IPv4Address(lo)}-{ipaddress.IPv4Address(hi)}"


@st.composite
def addrs(draw: st.DrawFn, table: bool = True) -> str:
    choices = ["any", "any", "any", "me", "item", "item", "list"] + (["table"] if table else [])
    kind = draw(st.sampled_from(choices))
    neg = "not " if draw(st.integers(0, 3)) == 0 else ""
    if kind in ("any", "me"):
        return neg + kind
    if kind == "table":
        return neg + "table(t)"
    if kind == "item":
        return neg + draw(addr_items())
    return neg + "{ " + ", ".join(draw(st.lists(addr_items(), min_size=1, max_size=3))) + " }"


@st.composite
def ports(draw: st.DrawFn) -> str:
    items = []
    for _ in range(draw(st.integers(1, 3))):
        port = st.sampled_from(_PORTS) if draw(st.integers(0, 4)) else st.integers(0, 65535)
        lo, hi = sorted(draw(st.lists(port, min_size=2, max_size=2)))
        form = draw(st.sampled_from(["one", "range", "name"]))
        items.append(str(lo) if form == "one" else f"{lo}-{hi}" if form == "range" else "https")
    return ",".join(items)


@st.composite
def rule_texts(draw: st.DrawFn, number: int = 100, table: bool = True) -> str:
    """A random rule numbered ``number`` (skipto targets above it)."""
    action = draw(
        st.sampled_from(["allow", "deny", "reset", "unreach port", "unreach 1", "count", "skipto"])
    )
    if action == "skipto":
        action = f"skipto {draw(st.integers(number + 1, 65535))}"
    proto = draw(st.sampled_from(["ip", "tcp", "udp", "icmp", "47"]))
    words = [str(number), action]
    if draw(st.integers(0, 9)) == 0:
        words.append("log")
    words += [proto, "from", draw(addrs(table))]
    if proto in ("tcp", "udp") and draw(st.booleans()):
        words.append(draw(ports()))
    words += ["to", draw(addrs(table))]
    if proto in ("tcp", "udp") and draw(st.booleans()):
        words.append(draw(ports()))
    if draw(st.booleans()):
        words.append(draw(st.sampled_from(["in", "out"])))
    if draw(st.integers(0, 5)) == 0:
        words += [draw(st.sampled_from(["via", "recv", "xmit"])), draw(st.sampled_from(["a", "b"]))]
    if proto == "tcp":
        flags = draw(st.lists(st.sampled_from(["syn", "ack", "fin", "rst"]), unique=True))
        if flags:
            words += ["tcpflags", ",".join(("!" if draw(st.booleans()) else "") + f for f in flags)]
        if draw(st.integers(0, 2)) == 0:
            words.append(draw(st.sampled_from(["setup", "established"])))
    if proto == "icmp" and draw(st.booleans()):
        words += ["icmptypes", ",".join(map(str, draw(st.lists(st.integers(0, 12), min_size=1))))]
    if draw(st.integers(0, 5)) == 0:
        lo, hi = sorted(draw(st.lists(st.integers(0, 255), min_size=2, max_size=2)))
        words += ["ttl", f"{lo}-{hi}"]
    if draw(st.integers(0, 5)) == 0:
        words.append("frag")
    if not action.startswith(("count", "skipto")) and draw(st.integers(0, 5)) == 0:
        words.append("keep-state")
    return " ".join(words)


@given(rule_texts())
def test_normalized_printing_round_trips(text: str) -> None:
    rule = parse_rules("table t add 10.0.0.0/8\n" + text).rules[0]
    again = parse_rules("table t add 10.0.0.0/8\n" + str(rule)).rules[0]
    assert again == rule
    assert str(again) == str(rule)


# -- errors --------------------------------------------------------------------------------------

ERRORS = [
    # (text, rule, line, column, expected fragment, found)
    ("frobnicate ip from any to any", 100, 1, 1, "an action", "frobnicate"),
    ("allow ip from 1.2.3 to any", 100, 1, 15, "an address", "1.2.3"),
    ("allow ip from 300.1.1.1 to any", 100, 1, 15, "an address", "300.1.1.1"),
    ("allow ip from any to 1.2.3.4/33", 100, 1, 22, "a prefix length 0..32", "1.2.3.4/33"),
    ("allow ip from 1.2.3.4:255.255.0 to any", 100, 1, 15, "a mask", "1.2.3.4:255.255.0"),
    ("allow ip from 9.0.0.0-1.0.0.0 to any", 100, 1, 15, "low <= high", "9.0.0.0-1.0.0.0"),
    ("allow tcp from any 70000 to any", 100, 1, 20, "a port", "70000"),
    ("allow tcp from any to any 80,gopher", 100, 1, 30, "a port", "gopher"),
    ("allow tcp from any to any 443-80", 100, 1, 27, "low <= high", "443-80"),
    ("allow ip from any 80 to any", 100, 1, 19, "ports need proto tcp or udp", "80"),
    ("allow ip from any any", 100, 1, 19, "'to'", "any"),
    ("allow ip from any", 100, 1, 18, "'to'", ""),
    ("allow ip to any", 100, 1, 10, "'from'", "to"),
    ("allow smtp from any to any", 100, 1, 7, "a protocol", "smtp"),
    ("allow ip from any to any sideways", 100, 1, 26, "an option", "sideways"),
    ("allow ip from any to any in out", 100, 1, 29, "each option at most once", "out"),
    ("allow ip from any to any setup", 100, 1, 26, "only with proto tcp", "setup"),
    ("allow tcp from any to any icmptypes 8", 100, 1, 27, "only with proto icmp", "icmptypes"),
    ("allow tcp from any to any tcpflags syn,!syn", 100, 1, 40, "a TCP flag", "!syn"),
    ("allow icmp from any to any icmptypes 8,256", 100, 1, 40, "an ICMP type", "256"),
    ("allow ip from any to any ttl 9-3", 100, 1, 30, "low <= high", "9-3"),
    ("allow ip from any to any ttl x", 100, 1, 30, "a TTL", "x"),
    ("allow ip from any to any via", 100, 1, 29, "an interface name", ""),
    ("count ip from any to any keep-state", 100, 1, 26, "keep-state only", "keep-state"),
    ("allow ip from any to any keep-state limit 0", 100, 1, 43, "a state limit", "0"),
    ("unreach bogus ip from any to any", 100, 1, 9, "an unreach code", "bogus"),
    ("unreach 16 ip from any to any", 100, 1, 9, "an unreach code", "16"),
    ("500 skipto 400 ip from any to any", 500, 1, 12, "above 500 to skip to", "400"),
    ("500 skipto 500 ip from any to any", 500, 1, 12, "above 500 to skip to", "500"),
    ("300 allow ip from any to any\n200 deny ip from any to any", 200, 2, 1, "above 300", "200"),
    ("300 allow ip from any to any\n300 deny ip from any to any", 300, 2, 1, "above 300", "300"),
    ("65534 allow ip from any to any\ncount ip from any to any", 65634, 2, 1, "room", "count"),
    ("allow ip from table(nope) to any", 100, 1, 15, "a defined table", "table(nope)"),
    ("allow ip from { 1.1.1.1 2.2.2.2 } to any", 100, 1, 25, "',' or '}'", "2.2.2.2"),
    ("allow ip from { } to any", 100, 1, 17, "an address", "}"),
    ("65535 count ip from any to any", 65535, 1, 7, "the default rule", "count"),
    (
        "65535 deny ip from any to any\nallow ip from any to any",
        65635,
        2,
        1,
        "nothing after",
        "allow",
    ),
]


@pytest.mark.parametrize(("text", "rule", "line", "column", "expected", "found"), ERRORS)
def test_errors_name_rule_line_column(
    text: str, rule: int, line: int, column: int, expected: str, found: str
) -> None:
    with pytest.raises(FirewallError) as info:
        parse_rules(text, "my.fw")
    err = info.value
    assert (err.filename, err.rule, err.line, err.column, err.found) == (
        "my.fw",
        rule,
        line,
        column,
        found,
    ), str(err)
    assert expected in err.expected
    shown = "end of line" if found == "" else f"'{found}'"
    assert str(err) == (
        f"my.fw: rule {rule} (line {line}), column {column}: expected {err.expected}, found {shown}"
    )
    assert isinstance(err, ValueError)


@pytest.mark.parametrize(
    ("text", "column", "expected"),
    [
        ("table t add 1.2.3.0/24 x y", 26, "end of line"),
        ("table t add 1.2.3.4/24", 13, "without host bits"),
        ("table t put 1.2.3.4/24", 9, "'add'"),
        ("table (t) add 1.2.3.4", 7, "a table name"),
        ("table t add 1.2.3/24", 13, "a prefix"),
    ],
)
def test_table_line_errors(text: str, column: int, expected: str) -> None:
    with pytest.raises(FirewallError) as info:
        parse_rules(text, "t.fw")
    assert info.value.column == column and expected in info.value.expected
    assert str(info.value).startswith("t.fw: table (line 1), column ")


def test_ruleset_api_misuse_raises() -> None:
    with pytest.raises(ValueError, match="numbers must increase"):
        Ruleset([Rule(200, Action.ALLOW), Rule(100, Action.DENY)])
    with pytest.raises(ValueError, match="unknown table"):
        Ruleset([Rule(100, Action.ALLOW, AddrSpec("table", table="x"))])


# -- scalar semantics ----------------------------------------------------------------------------


def test_first_match_wins_and_default() -> None:
    rules = "allow tcp from any to any 80\ndeny tcp from any to any\n"
    assert verdict(rules, tcp(dport=80)) == Verdict.PASS
    assert verdict(rules, tcp(dport=81)) == Verdict.DROP
    assert verdict(rules, udp()) == Verdict.DROP  # default deny
    assert parse_rules(rules, default_allow=True).evaluate(packet(udp())) == Verdict.PASS


def test_addresses() -> None:
    rs = parse_rules(
        "table blk add 203.0.113.0/24\n"
        "deny ip from table(blk) to any\n"
        "allow ip from { 198.18.0.0/16, 10.0.0.9-10.0.0.12, 172.16.0.7:255.255.0.255 } to any\n"
        "allow ip from any to me\n"
        "allow ip from not 192.0.2.0/24 to 192.0.2.1\n",
        me=[ip("192.0.2.99")],
    )
    assert verdict(rs, udp(src="203.0.113.9", dst="192.0.2.99")) == Verdict.DROP
    assert rs.counter(100) == (1, 40)
    assert verdict(rs, udp(src="198.18.200.1")) == Verdict.PASS
    assert verdict(rs, udp(src="10.0.0.12")) == Verdict.PASS
    assert verdict(rs, udp(src="10.0.0.13", dst="1.1.1.1")) == Verdict.DROP
    assert verdict(rs, udp(src="172.16.99.7", dst="1.1.1.1")) == Verdict.PASS  # mask form
    assert verdict(rs, udp(src="172.16.99.8", dst="1.1.1.1")) == Verdict.DROP
    assert verdict(rs, udp(src="1.1.1.1", dst="192.0.2.99")) == Verdict.PASS  # me
    assert verdict(rs, udp(src="1.1.1.1", dst="192.0.2.1")) == Verdict.PASS  # not
    assert verdict(rs, udp(src="192.0.2.5", dst="192.0.2.1")) == Verdict.DROP


def test_ports_flags_icmp_ttl_frag() -> None:
    rules = (
        "deny ip from any to any frag\n"
        "allow tcp from any 1024-65535 to any https,8000-8080 setup\n"
        "allow tcp from any to any established tcpflags !syn\n"
        "allow tcp from any to any tcpflags fin,!ack,!syn\n"
        "allow udp from any to any domain ttl 5-10\n"
        "allow icmp from any to any icmptypes echo-request\n"
    )
    rs = parse_rules(rules)
    assert verdict(rs, tcp(dport=443)) == Verdict.PASS
    assert verdict(rs, tcp(dport=8080)) == Verdict.PASS
    assert verdict(rs, tcp(dport=8081)) == Verdict.DROP
    assert verdict(rs, tcp(sport=80, dport=443)) == Verdict.DROP  # source port out of range
    assert verdict(rs, tcp(dport=443, flags="SA")) == Verdict.DROP  # not setup, has syn
    assert verdict(rs, tcp(dport=1, flags="A")) == Verdict.PASS  # established
    assert verdict(rs, tcp(dport=1, flags="R")) == Verdict.PASS  # established (rst)
    assert verdict(rs, tcp(dport=1, flags="F")) == Verdict.PASS
    assert verdict(rs, tcp(dport=1, flags="FS")) == Verdict.DROP
    assert verdict(rs, udp(ttl=5)) == Verdict.PASS
    assert verdict(rs, udp(ttl=11)) == Verdict.DROP
    assert verdict(rs, icmp(type=8)) == Verdict.PASS
    assert verdict(rs, icmp(type=0)) == Verdict.DROP
    assert verdict(rs, udp(flags="MF")) == Verdict.DROP
    assert rs.counter(100)[0] == 1
    # a later fragment has no ports: a port rule does not match it
    later = parse_rules("allow udp from any to any 53", default_allow=False)
    assert verdict(later, udp(frag=10)) == Verdict.DROP


def test_direction_and_interfaces() -> None:
    rs = parse_rules(
        "allow ip from any to any in recv eth0\n"
        "allow ip from any to any out xmit eth1\n"
        "allow udp from any to any via eth2\n"
        "allow tcp from any to any recv eth3\n",
        interfaces={"eth0": 1, "eth1": 2, "eth2": 3, "eth3": 4},
    )
    assert verdict(rs, icmp(), IN, 1) == Verdict.PASS
    assert verdict(rs, icmp(), IN, 2) == Verdict.DROP
    assert verdict(rs, icmp(), FWD, 1) == Verdict.DROP  # 'in' does not match FORWARD
    assert verdict(rs, icmp(), OUT, 2) == Verdict.PASS
    assert verdict(rs, icmp(), OUT, 1) == Verdict.DROP
    for d in (IN, FWD, OUT):
        assert verdict(rs, udp(), d, 3) == Verdict.PASS
    assert verdict(rs, tcp(), FWD, 4) == Verdict.PASS  # recv applies at FORWARD
    assert verdict(rs, tcp(), OUT, 4) == Verdict.DROP  # ...not at OUT
    unknown = parse_rules("allow ip from any to any via nosuch")
    assert verdict(unknown, icmp(), IN, 0) == Verdict.DROP


def test_count_and_skipto() -> None:
    rs = parse_rules(
        "100 count ip from any to any\n"
        "200 skipto 400 udp from any to any\n"
        "300 deny ip from any to any\n"
        "400 count udp from any to any 53\n"
        "500 allow udp from any to any\n"
    )
    assert verdict(rs, udp()) == Verdict.PASS
    assert verdict(rs, tcp()) == Verdict.DROP
    assert [c.packets for c in rs.counters] == [2, 1, 1, 1, 1, 0]
    assert rs.counter(100) == (2, 40 + 40)  # udp 20+8+12, tcp 20+20
    # skipto to a number no rule has lands on the next rule above it (here the default)
    rs = parse_rules("100 skipto 1000 ip from any to any\n200 allow ip from any to any")
    assert verdict(rs, udp()) == Verdict.DROP


def test_log_records_a_line() -> None:
    rs = parse_rules("deny log tcp from any to any")
    rs.now = 12.5
    assert verdict(rs, tcp(sport=1234, dport=22)) == Verdict.DROP
    assert list(rs.log) == ["12.500000 ipfw: 100 deny TCP 198.18.0.1:1234 198.19.0.1:22 in via 1"]


# -- replies -------------------------------------------------------------------------------------


def test_reset_answers_syn_with_rst_ack() -> None:
    rs = parse_rules("reset tcp from any to any")
    syn = IP(src="198.18.0.1", dst="198.19.0.1") / TCP(sport=40000, dport=22, flags="S", seq=7)
    pkt = packet(syn)
    assert rs.evaluate(pkt) == Verdict.DROP
    assert pkt.replies is not None and len(pkt.replies) == 1
    rst = IP(pkt.replies[0])
    assert (rst.src, rst.dst, rst[TCP].sport, rst[TCP].dport) == (
        "198.19.0.1",
        "198.18.0.1",
        22,
        40000,
    )
    assert str(rst[TCP].flags) == "RA" and rst[TCP].seq == 0 and rst[TCP].ack == 8
    # scapy recomputes the checksums: the reply's must equal them
    fresh = IP(bytes(rst))
    del fresh.chksum, fresh[TCP].chksum
    fresh = IP(bytes(fresh))
    assert (fresh.chksum, fresh[TCP].chksum) == (rst.chksum, rst[TCP].chksum)


def test_reset_answers_ack_segment_with_its_ack() -> None:
    rs = parse_rules("reset tcp from any to any")
    seg = (
        IP(src="198.18.0.1", dst="198.19.0.1")
        / TCP(sport=40000, dport=80, flags="PA", seq=100, ack=5555)
        / Raw(b"x" * 10)
    )
    pkt = packet(seg)
    rs.evaluate(pkt)
    rst = IP(pkt.replies[0])  # type: ignore[index]
    assert str(rst[TCP].flags) == "R" and rst[TCP].seq == 5555


def test_reset_is_deny_without_reply_for_non_tcp_and_rst() -> None:
    rs = parse_rules("reset ip from any to any")
    for p in (udp(), tcp(flags="R")):
        pkt = packet(p)
        assert rs.evaluate(pkt) == Verdict.DROP and pkt.replies is None


def test_unreach_quotes_the_packet() -> None:
    rs = parse_rules("unreach port udp from any to any", reply_source=ip("198.18.255.254"))
    original = udp(dst="198.19.0.9", sport=1111, dport=7777)
    pkt = packet(original)
    assert rs.evaluate(pkt) == Verdict.DROP
    reply = IP(pkt.replies[0])  # type: ignore[index]
    assert (reply.src, reply.dst) == ("198.18.255.254", "198.18.0.1")
    assert (reply[ICMP].type, reply[ICMP].code) == (3, 3)
    quoted = reply[IPerror]
    assert bytes(quoted)[:28] == bytes(original)[:28]  # IP header + 8 bytes
    assert (quoted.src, quoted.dst, quoted[UDPerror].sport, quoted[UDPerror].dport) == (
        "198.18.0.1",
        "198.19.0.9",
        1111,
        7777,
    )
    default_src = parse_rules("unreach host ip from any to any")
    pkt = packet(tcp())
    default_src.evaluate(pkt)
    reply = IP(pkt.replies[0])  # type: ignore[index]
    assert reply.src == "198.19.0.1" and reply[ICMP].code == 1


@pytest.mark.parametrize(
    "p",
    [
        icmp(type=3),  # about an ICMP error
        udp(frag=8),  # non-first fragment
        udp(dst="224.0.0.9"),  # multicast
        udp(src="0.0.0.0"),
    ],
)
def test_no_unreach_where_rfc1812_forbids(p: IP) -> None:
    rs = parse_rules("unreach port ip from any to any")
    pkt = packet(p)
    assert rs.evaluate(pkt) == Verdict.DROP and pkt.replies is None


# -- keep-state ----------------------------------------------------------------------------------

STATEFUL = "allow tcp from 198.18.0.0/16 to any 80 setup keep-state\nallow udp from any to any 53 keep-state\n"  # noqa: E501


def test_reply_direction_passes_through_state() -> None:
    rs = parse_rules(STATEFUL)
    rs.now = 10.0
    assert verdict(rs, tcp(flags="S")) == Verdict.PASS
    reply = tcp(src="198.19.0.1", dst="198.18.0.1", sport=80, dport=40000, flags="SA")
    assert verdict(rs, reply) == Verdict.PASS
    assert verdict(rs, tcp(flags="A")) == Verdict.PASS
    assert verdict(rs, tcp(dport=81, flags="A")) == Verdict.DROP  # another flow
    # the reply of a flow nobody opened is dropped
    assert verdict(rs, tcp(src="198.19.0.1", dst="198.18.0.2", sport=80, flags="SA")) == (
        Verdict.DROP
    )
    assert rs.counter(100) == (3, 120)
    assert rs.stats["ipfw.state.created"] == 1 and rs.stats["ipfw.state.hit"] == 2


def test_state_timeouts() -> None:
    rs = parse_rules(STATEFUL, timeouts=StateTimeouts(tcp_established=300, tcp_opening=20, other=5))
    rs.now = 0.0
    verdict(rs, udp())
    reply = udp(src="198.19.0.1", dst="198.18.0.1", sport=53, dport=5353)
    # replies match rule 200 (port 53 is the source) only through the state
    rs.now = 4.9
    assert verdict(rs, reply) == Verdict.PASS
    rs.now = 4.9 + 5.0  # the reply renewed the state until 9.9
    assert verdict(rs, reply) == Verdict.DROP
    assert not rs.states and rs.stats["ipfw.state.expired"] == 1

    rs.now = 100.0
    verdict(rs, tcp())
    back = tcp(src="198.19.0.1", dst="198.18.0.1", sport=80, dport=40000, flags="A")
    rs.now = 119.0  # opening: 20 s
    assert verdict(rs, back) == Verdict.PASS
    rs.now = 400.0  # both directions seen: 300 s after the last packet (119)
    assert verdict(rs, back) == Verdict.PASS
    rs.now = 700.5
    assert verdict(rs, back) == Verdict.DROP


def test_state_table_bound_reclaims_expired_then_drops() -> None:
    rs = parse_rules(STATEFUL, max_states=2, timeouts=StateTimeouts(other=10))
    rs.now = 0.0
    assert verdict(rs, udp(sport=1)) == Verdict.PASS
    rs.now = 1.0
    assert verdict(rs, udp(sport=2)) == Verdict.PASS
    assert verdict(rs, udp(sport=3)) == Verdict.DROP  # full, nothing expired
    assert rs.stats["ipfw.state.full"] == 1 and len(rs.states) == 2
    rs.now = 10.5  # the first has expired (at 10), the second not (at 11)
    assert verdict(rs, udp(sport=3)) == Verdict.PASS
    assert len(rs.states) == 2 and rs.stats["ipfw.state.expired"] == 1
    ports = sorted(k[2] if k[1] == ip("198.18.0.1") else k[4] for k in rs.states)
    assert ports == [2, 3]


def test_refreshed_state_survives_reclaim_at_its_first_expiry() -> None:
    """Reclaiming walks expiry order, not the table: a state refreshed after it was created must
    not be taken at its original expiry, and expired ones go oldest first."""
    rs = parse_rules(STATEFUL, max_states=3, timeouts=StateTimeouts(other=10))
    rs.now = 0.0
    for port in (1, 2, 3):
        assert verdict(rs, udp(sport=port)) == Verdict.PASS
    rs.now = 5.0
    assert verdict(rs, udp(sport=1)) == Verdict.PASS  # refreshes port 1 until 15
    rs.now = 12.0  # ports 2 and 3 expired at 10; port 1 lives on
    assert rs.expire_states() == 2
    ports = sorted(k[2] if k[1] == ip("198.18.0.1") else k[4] for k in rs.states)
    assert ports == [1]
    rs.now = 15.5
    assert rs.expire_states() == 1 and not rs.states
    assert rs.expire_states() == 0


def test_state_limit_per_rule() -> None:
    rs = parse_rules("allow udp from any to any keep-state limit 1")
    assert verdict(rs, udp(sport=1)) == Verdict.PASS
    assert verdict(rs, udp(sport=2)) == Verdict.DROP
    assert rs.stats["ipfw.state.limit"] == 1


# -- vectorized == scalar ------------------------------------------------------------------------

COLS = ("src", "dst", "proto", "sport", "dport", "tcp_flags", "icmp_type", "icmp_code", "ttl",
        "length")  # fmt: skip


def columns(pkts: list[PfilPacket]) -> dict[str, npt.NDArray[np.int64]]:
    cols = {c: np.array([getattr(p, c) for p in pkts], np.int64) for c in COLS}
    cols["src"] = cols["src"].astype(np.uint32)
    cols["dst"] = cols["dst"].astype(np.uint32)
    cols["fragment"] = np.array([p.fragment for p in pkts], np.bool_)
    return cols


@st.composite
def random_packets(draw: st.DrawFn) -> PfilPacket:
    proto = draw(st.sampled_from([1, 6, 17, 47]))
    addr = st.one_of(_near_hosts.map(ip), st.integers(0, 2**32 - 1))
    frag = draw(st.integers(0, 7)) == 0
    later = frag and draw(st.booleans())
    pkt = PfilPacket(
        ifindex=draw(st.integers(0, 2)),
        direction=IN,
        src=draw(addr),
        dst=draw(addr),
        proto=proto,
        ttl=draw(st.integers(0, 255)),
        length=draw(st.integers(20, 1500)),
        fragment=frag,
    )
    if not later:
        port = st.sampled_from(_PORTS) if draw(st.integers(0, 4)) else st.integers(0, 65535)
        if proto in (6, 17):
            pkt.sport, pkt.dport = draw(port), draw(port)
        if proto == 6:
            pkt.tcp_flags = draw(st.sampled_from([0x02, 0x12, 0x10, 0x04, 0x11, 0x01, 0x18, 0]))
        if proto == 1:
            pkt.icmp_type, pkt.icmp_code = draw(st.integers(0, 12)), 0
    return pkt


@st.composite
def random_rulesets(draw: st.DrawFn) -> str:
    lines = ["table t add 10.0.0.0/8", "table t add 198.18.0.0/15"]
    number = 0
    for _ in range(draw(st.integers(0, 8))):
        number += draw(st.integers(1, 3000))
        lines.append(draw(rule_texts(number)))
    return "\n".join(lines)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    random_rulesets(),
    st.lists(random_packets(), min_size=20, max_size=80),
    st.sampled_from(list(Direction)),
    st.booleans(),
)
def test_vectorized_equals_scalar(
    text: str, pkts: list[PfilPacket], direction: Direction, default_allow: bool
) -> None:
    options = {"me": [_HOSTS[1]], "interfaces": {"a": 1, "b": 2}, "default_allow": default_allow}
    vec = parse_rules(text, **options)  # type: ignore[arg-type]
    ifindex = np.array([p.ifindex for p in pkts], np.int64)
    for p in pkts:
        p.direction = direction
    out = vec.evaluate_batch(columns(pkts), direction, ifindex)
    assert out.dtype == np.uint8 and set(out.tolist()) <= {0, 1, 3}
    scalar = parse_rules(text, **options)  # type: ignore[arg-type]
    for p, v in zip(pkts, out.tolist(), strict=True):
        if v == 3:
            continue
        assert int(scalar.evaluate(copy.copy(p))) == v, (text, p)
    assert vec.packets.tolist() == scalar.packets.tolist()
    assert vec.bytes.tolist() == scalar.bytes.tolist()


def test_vectorized_punts_what_needs_the_scalar_path() -> None:
    rs = parse_rules(
        "50 count ip from any to any\n"
        "allow log udp from any to any 1\n"
        "reset ip from any to 198.19.0.2\n"
        "unreach port udp from any to any 4\n"
        "allow udp from any to any 53 keep-state\n"
        "allow ip from any to any\n"
    )
    to2 = "198.19.0.2"
    pkts = [packet(p) for p in (udp(dport=1), tcp(dst=to2), udp(dst=to2), udp(dport=4),
                                 udp(dport=53), udp(dport=99))]  # fmt: skip
    out = rs.evaluate_batch(columns(pkts), IN, 1)
    assert out.tolist() == [3, 3, 1, 3, 3, 0]  # reset of udp is a plain deny
    # the count rule counts only the packets the vector form decided: the scalar path counts
    # the punted ones when it handles them
    assert [c.packets for c in rs.counters] == [2, 0, 1, 0, 0, 1, 0]
    # once a state exists, both directions of its flow are decided by it before any rule
    # (counted on the creating rule); a state whose rule logs is still punted
    rs.evaluate(pkts[4])
    back = packet(udp(src="198.19.0.1", dst="198.18.0.1", sport=53, dport=5353))
    out = rs.evaluate_batch(columns([back, pkts[5]]), IN, 1)
    assert out.tolist() == [0, 0]
    assert rs.counters[4].packets == 2 and rs.stats["ipfw.state.hit"] == 1
    logged = parse_rules("allow log udp from any to any 53 keep-state")
    logged.evaluate(pkts[4])
    assert logged.evaluate_batch(columns([back]), IN, 1).tolist() == [3]
    assert logged.stats["ipfw.state.hit"] == 0 and logged.counters[0].packets == 1


def test_vectorized_large_batch_compaction() -> None:
    rng = np.random.default_rng(7)
    n = 20000
    text = "\n".join(
        [
            "allow udp from any to any 53",
            "deny tcp from 10.0.0.0/8 to any",
            "count ip from any to any",
            "skipto 1000 tcp from any to any 80",
            "deny ip from 0.0.0.0/1 to any",
            "1000 allow tcp from any to any established",
            "1100 deny ip from any to any ttl 0-63",
        ]
    )
    cols: dict[str, npt.NDArray[np.int64]] = {
        "src": rng.integers(0, 2**32, n).astype(np.uint32),
        "dst": rng.integers(0, 2**32, n).astype(np.uint32),
        "proto": rng.choice([6, 17, 1], n),
        "sport": rng.integers(0, 100, n),
        "dport": rng.choice([53, 80, 443], n),
        "tcp_flags": rng.integers(0, 32, n),
        "icmp_type": np.full(n, -1),
        "icmp_code": np.full(n, -1),
        "ttl": rng.integers(0, 256, n),
        "length": rng.integers(40, 1500, n),
    }
    vec = parse_rules(text)
    out = vec.evaluate_batch(cols, IN, np.zeros(n, np.int64))
    scalar = parse_rules(text)
    for i in range(0, n, 7):
        pkt = PfilPacket(0, IN, int(cols["src"][i]), int(cols["dst"][i]), int(cols["proto"][i]),
                         int(cols["ttl"][i]), int(cols["length"][i]), int(cols["sport"][i]),
                         int(cols["dport"][i]), int(cols["tcp_flags"][i]))  # fmt: skip
        if pkt.proto != 6:
            pkt.tcp_flags = -1
        if pkt.proto == 1:
            pkt.sport = pkt.dport = -1
        assert int(scalar.evaluate(pkt)) == out[i]


def test_table_lookup_in_both_paths() -> None:
    rib = Rib()
    rib.add(ip("203.0.113.0"), 24, "x")
    rs = parse_rules("deny ip from any to table(ext)", tables={"ext": rib}, default_allow=True)
    pkts = [packet(udp(dst="203.0.113.77")), packet(udp(dst="203.0.114.1"))]
    assert [int(rs.evaluate(p)) for p in pkts] == [1, 0]
    assert rs.evaluate_batch(columns(pkts), IN, 1).tolist() == [1, 0]


def test_port_and_address_range_boundaries_in_both_paths() -> None:
    rs = parse_rules(
        "allow udp from 10.0.0.5-10.0.0.9 to any 1000-2000\nallow tcp from any 7-7 to any 9"
    )
    cases = [
        (udp(src="10.0.0.5", dport=1000), 0),
        (udp(src="10.0.0.9", dport=2000), 0),
        (udp(src="10.0.0.4", dport=1000), 1),
        (udp(src="10.0.0.10", dport=1000), 1),
        (udp(src="10.0.0.5", dport=999), 1),
        (udp(src="10.0.0.5", dport=2001), 1),
        (tcp(sport=7, dport=9), 0),
        (tcp(sport=8, dport=9), 1),
    ]
    pkts = [packet(p) for p, _ in cases]
    expected = [v for _, v in cases]
    assert [int(rs.evaluate(p)) for p in pkts] == expected
    assert rs.evaluate_batch(columns(pkts), IN, 1).tolist() == expected


@st.composite
def long_rulesets(draw: st.DrawFn) -> str:
    lines = ["table t add 10.0.0.0/8", "table t add 198.18.0.0/15"]
    number = 0
    for _ in range(draw(st.integers(0, 40))):
        number += draw(st.integers(1, 1500))
        lines.append(draw(rule_texts(number)))
    return "\n".join(lines)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    long_rulesets(),
    st.lists(random_packets(), min_size=1, max_size=80),
    st.sampled_from(list(Direction)),
    st.booleans(),
)
def test_rule_kernel_equals_masks_and_scalar(
    text: str, pkts: list[PfilPacket], direction: Direction, default_allow: bool
) -> None:
    """The product's rule-major kernel against the oracles (the per-packet kernel and the
    per-rule numpy masks) on the same random ruleset: the same verdicts and counters, and those
    of the scalar path."""
    options = {"me": [_HOSTS[1]], "interfaces": {"a": 1, "b": 2}, "default_allow": default_allow}
    ifindex = np.array([p.ifindex for p in pkts], np.int64)
    for p in pkts:
        p.direction = direction
    kernel = parse_rules(text, **options)  # type: ignore[arg-type]
    walk = parse_rules(text, **options)  # type: ignore[arg-type]
    masks = parse_rules(text, **options)  # type: ignore[arg-type]
    out_k = kernel.evaluate_batch(columns(pkts), direction, ifindex)
    out_w = walk.run_batch_kernel(columns(pkts), direction, ifindex, packet_major_kernel)
    out_m = evaluate_masks(masks, columns(pkts), direction, ifindex)
    assert out_k.tolist() == out_w.tolist() == out_m.tolist()
    assert kernel.packets.tolist() == walk.packets.tolist() == masks.packets.tolist()
    assert kernel.bytes.tolist() == walk.bytes.tolist() == masks.bytes.tolist()
    scalar = parse_rules(text, **options)  # type: ignore[arg-type]
    for p, v in zip(pkts, out_k.tolist(), strict=True):
        if v != 3:
            assert int(scalar.evaluate(copy.copy(p))) == v, (text, p)
    assert kernel.packets.tolist() == scalar.packets.tolist()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    long_rulesets(),
    st.lists(
        st.tuples(random_packets(), st.sampled_from(list(Direction)), st.integers(0, 9)),
        min_size=1,
        max_size=60,
    ),
    st.sampled_from([{"a": 1, "b": 2}, {"a": 1}]),
    st.booleans(),
)
def test_generated_scalar_walk_equals_reference(
    text: str,
    cases: list[tuple[PfilPacket, Direction, int]],
    interfaces: dict[str, int],
    default_allow: bool,
) -> None:
    """The scalar path's generated per-direction, per-protocol walkers against every rule
    tested in turn: the same verdicts, replies, counters, logs, states and stats, packet after
    packet (states made by one packet decide later ones), any direction, protocols no rule names
    included."""
    options = {"me": [_HOSTS[1]], "interfaces": interfaces, "default_allow": default_allow}
    fast = parse_rules(text, **options)  # type: ignore[arg-type]
    ref = use_reference_walk(parse_rules(text, **options))  # type: ignore[arg-type]
    for t, (pkt, direction, other) in enumerate(cases):
        pkt.direction = direction
        if other == 0:
            pkt.proto = 50  # named by no rule
        a, b = copy.copy(pkt), copy.copy(pkt)
        assert fast.evaluate(a, float(t)) == ref.evaluate(b, float(t)), (text, pkt)
        assert a.replies == b.replies
    assert fast.packets.tolist() == ref.packets.tolist()
    assert fast.bytes.tolist() == ref.bytes.tolist()
    assert list(fast.log) == list(ref.log)
    assert fast.stats == ref.stats
    assert fast.states.keys() == ref.states.keys()


def test_generated_walk_count_skipto_and_dispatch() -> None:
    """Count and skipto continue the generated walk at the right rule; rules for another
    direction or protocol are left out of a packet's walker, never reordered."""
    rs = parse_rules(
        "100 count udp from any to any\n"
        "200 skipto 500 ip from 10.0.0.0/8 to any\n"
        "300 deny udp from any to any 53 in\n"
        "400 deny tcp from any to any\n"
        "500 count ip from any to any\n"
        "600 allow udp from any to any 53 out\n"
        "700 deny icmp from any to any\n"
        "800 allow ip from any to any\n"
    )
    in53 = PfilPacket(1, IN, ip("10.1.2.3"), ip("198.19.0.1"), 17, 64, 100, 5353, 53)
    out53 = PfilPacket(1, OUT, ip("192.0.2.1"), ip("198.19.0.1"), 17, 64, 100, 5353, 53)
    tcp_in = PfilPacket(1, IN, ip("192.0.2.1"), ip("198.19.0.1"), 6, 64, 100, 1, 2, 0x10)
    gre = PfilPacket(1, IN, ip("10.0.0.1"), ip("198.19.0.1"), 47, 64, 100)
    assert rs.evaluate(in53) == Verdict.PASS  # skips 300, counted by 100, 200, 500, 800
    assert rs.evaluate(out53) == Verdict.PASS  # 300 is "in" only: 100, 500, 600
    assert rs.evaluate(tcp_in) == Verdict.DROP  # 400
    assert rs.evaluate(gre) == Verdict.PASS  # 200 -> 500, 800
    got = {c.number: c.packets for c in rs.counters}
    assert got == {100: 2, 200: 2, 300: 0, 400: 1, 500: 3, 600: 1, 700: 0, 800: 2, 65535: 0}


# -- dynamic states in the vector form -------------------------------------------------------------


def _state_view(rs: Ruleset) -> dict[object, tuple[int, float, tuple[int, int], bool, bool]]:
    return {k: (s.rule, s.expire, s.origin, s.replied, s.tcp) for k, s in rs.states.items()}


def _batch_then_punts(
    rs: Ruleset, pkts: list[PfilPacket], now: float, masks: bool = False
) -> list[int]:
    """What the router does with a batch: the vector form (or, with ``masks``, the numpy-mask
    oracle), then its punts through the scalar path in packet order."""
    rs.now = now
    ifindex = np.array([p.ifindex for p in pkts], np.int64)
    if masks:
        out = evaluate_masks(rs, columns(pkts), IN, ifindex)
    else:
        out = rs.evaluate_batch(columns(pkts), IN, ifindex)
    assert set(out.tolist()) <= {0, 1, 3}
    got = out.tolist()
    for i, v in enumerate(got):
        if v == 3:
            got[i] = int(rs.evaluate(copy.copy(pkts[i])))
    return got


def test_vectorized_state_hits_equal_scalar() -> None:
    """Packets of existing states are decided in the batch: the creating rule's verdict and
    counters, ipfw.state.hit, the refresh (the reply direction moves a TCP state to the
    established timeout) -- all as the scalar path, and nothing of it punted."""
    text = (
        "100 allow tcp from 198.18.0.0/16 to any 80 setup keep-state\n"
        "200 deny udp from any to any 9 keep-state\n"
        "300 allow udp from any to any 53 keep-state\n"
        "400 allow icmp from any to any keep-state\n"
    )
    timeouts = StateTimeouts(tcp_established=300, tcp_opening=20, other=5)
    vec, ref = (parse_rules(text, timeouts=timeouts) for _ in range(2))
    openers = [packet(p) for p in (tcp(flags="S"), udp(dport=9), udp(dport=53), icmp())]
    for rs in (vec, ref):
        rs.now = 1.0
        assert [int(rs.evaluate(copy.copy(p))) for p in openers] == [0, 1, 0, 0]
    batch = [
        packet(tcp(src="198.19.0.1", dst="198.18.0.1", sport=80, dport=40000, flags="SA")),
        packet(tcp(flags="A")),
        packet(udp(src="198.19.0.1", dst="198.18.0.1", sport=9, dport=5353)),  # state: deny
        packet(udp(src="198.19.0.1", dst="198.18.0.1", sport=53, dport=5353)),
        packet(icmp(src="198.19.0.1", dst="198.18.0.1", type=0)),
        packet(tcp(src="198.19.0.1", dst="198.18.0.1", sport=80, dport=40001, flags="SA")),
    ]
    vec.now = 3.0
    out = vec.evaluate_batch(columns(batch), IN, 1)
    assert out.tolist() == [0, 0, 1, 0, 0, 1]  # no punt; the last has no state: default deny
    ref.now = 3.0
    assert [int(ref.evaluate(copy.copy(p))) for p in batch] == out.tolist()
    assert vec.packets.tolist() == ref.packets.tolist() == [3, 2, 2, 2, 1]
    assert vec.bytes.tolist() == ref.bytes.tolist()
    assert vec.stats == ref.stats and vec.stats["ipfw.state.hit"] == 5
    assert _state_view(vec) == _state_view(ref)
    tcp_state = next(s for k, s in vec.states.items() if k[0] == 6)
    assert tcp_state.replied and tcp_state.expire == 303.0
    assert sorted(s.expire for k, s in vec.states.items() if k[0] != 6) == [8.0, 8.0, 8.0]


def test_vectorized_expired_state_is_punted_and_removed_as_scalar() -> None:
    """A packet of an expired state is punted (the scalar path removes the state and walks the
    rules, in packet order); the table and the counters end as in the scalar path."""
    text = "100 allow udp from 198.18.0.0/16 to any 53 keep-state\n"
    vec, ref = (parse_rules(text, timeouts=StateTimeouts(other=5)) for _ in range(2))
    opener = packet(udp(dport=53))
    reply = packet(udp(src="198.19.0.1", dst="198.18.0.1", sport=53, dport=5353))
    for rs in (vec, ref):
        rs.now = 0.0
        rs.evaluate(copy.copy(opener))
    batch = [reply, opener, reply]
    vec.now = 5.0  # expired at 5.0
    assert vec.evaluate_batch(columns(batch), IN, 1).tolist() == [3, 3, 3]
    assert vec.stats["ipfw.state.expired"] == 0 and len(vec.states) == 1  # left to the scalar
    assert _batch_then_punts(vec, batch, 5.0) == [1, 0, 0]
    ref.now = 5.0
    assert [int(ref.evaluate(copy.copy(p))) for p in batch] == [1, 0, 0]
    assert vec.packets.tolist() == ref.packets.tolist()
    assert vec.stats == ref.stats and vec.stats["ipfw.state.expired"] == 1
    assert _state_view(vec) == _state_view(ref)


def test_vectorized_state_punts_log_and_reply_rules() -> None:
    text = (
        "100 allow log udp from any to any 53 keep-state\n"
        "200 reset tcp from any to any 25 keep-state\n"
        "300 unreach port udp from any to any 7 keep-state\n"
        "400 reset udp from any to any 9 keep-state\n"
    )
    rs = parse_rules(text)
    opened = [packet(p) for p in (udp(dport=53), tcp(dport=25), udp(dport=7), udp(dport=9))]
    for p in opened:
        rs.evaluate(copy.copy(p))
    assert len(rs.states) == 4
    before = rs.packets.copy()
    out = rs.evaluate_batch(columns(opened), IN, 1)
    assert out.tolist() == [3, 3, 3, 1]  # reset of udp: a plain deny, decided here
    assert (rs.packets - before).tolist() == [0, 0, 0, 1, 0]
    assert rs.stats["ipfw.state.hit"] == 1


_FLOW_HOSTS = ["198.18.0.1", "198.18.0.2", "198.19.0.1", "10.0.0.1"]
_STATEFUL_RULES = [
    "allow tcp from 198.18.0.0/15 to any setup keep-state",
    "allow tcp from any to any 80 keep-state limit 2",
    "deny udp from any to any 9 keep-state",
    "allow log udp from any to any 123 keep-state",
    "allow udp from 198.18.0.0/16 to any keep-state",
    "reset tcp from any to any 25 keep-state",
    "unreach port udp from any to any 7 keep-state",
    "allow icmp from any to any icmptypes 8 keep-state",
    "count ip from any to any",
    "deny tcp from any to any 22",
    "allow udp from any to any 53",
]


@st.composite
def flow_batches(draw: st.DrawFn) -> list[tuple[list[PfilPacket], float]]:
    """Batches of packets of a few flows, either direction (so states are hit, from both
    sides), with the time step before each batch."""
    flows = []
    for _ in range(draw(st.integers(1, 4))):
        proto = draw(st.sampled_from([1, 6, 6, 17, 17]))
        a, b = (ip(h) for h in draw(st.permutations(_FLOW_HOSTS))[:2])
        ports = (draw(st.sampled_from([1, 2])), draw(st.sampled_from([7, 9, 22, 25, 53, 80, 123])))
        flows.append((proto, a, b, ports))
    batches = []
    for _ in range(draw(st.integers(1, 6))):
        pkts = []
        for _ in range(draw(st.integers(0, 12))):
            proto, a, b, (sport, dport) = draw(st.sampled_from(flows))
            if draw(st.booleans()):
                a, b, sport, dport = b, a, dport, sport
            pkt = PfilPacket(1, IN, a, b, proto, 64, draw(st.integers(20, 1500)))
            if proto in (6, 17):
                pkt.sport, pkt.dport = sport, dport
            if proto == 6:
                pkt.tcp_flags = draw(st.sampled_from([0x02, 0x12, 0x10, 0x11]))
            if proto == 1:
                pkt.icmp_type, pkt.icmp_code = draw(st.sampled_from([0, 8])), 0
            pkts.append(pkt)
        batches.append((pkts, draw(st.sampled_from([0.0, 1.0, 4.0, 5.0, 9.0, 30.0]))))
    return batches


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(_STATEFUL_RULES), min_size=1, max_size=6),
    flow_batches(),
    st.integers(1, 8),
    st.booleans(),
)
def test_vectorized_states_equal_scalar_over_batches(
    lines: list[str],
    batches: list[tuple[list[PfilPacket], float]],
    max_states: int,
    masks: bool,
) -> None:
    """Batches through the vector form (punts through the scalar path) against every packet
    through the scalar path, time advancing between batches so states expire, the table fills
    and rules hit their limits: the same verdicts, counters, stats, logs and states.

    The vector form decides a batch against the states at its start (ip/vector.py, "Batch
    semantics"): a state created by a punted packet is not seen by later packets of the same
    batch.  So that the comparison is exact, a batch keeps no packet after one that creates a
    state for its flow (those packets are what the next batch sees)."""
    text = "\n".join(f"{100 * (i + 1)} {line}" for i, line in enumerate(lines))
    timeouts = StateTimeouts(tcp_established=40, tcp_opening=10, other=5)
    vec = parse_rules(text, max_states=max_states, timeouts=timeouts)
    ref = parse_rules(text, max_states=max_states, timeouts=timeouts)
    now = 0.0
    for pkts, step in batches:
        now += step
        ref.now = now
        kept: list[PfilPacket] = []
        expected: list[int] = []
        created: set[object] = set()
        for p in pkts:
            key = (p.proto, *sorted([(p.src, max(p.sport, 0)), (p.dst, max(p.dport, 0))]))
            if p.proto == 1:
                key = (p.proto, *sorted([(p.src, 0), (p.dst, 0)]))
            if key in created:
                continue
            made = ref.stats["ipfw.state.created"]
            expected.append(int(ref.evaluate(copy.copy(p))))
            kept.append(p)
            if ref.stats["ipfw.state.created"] != made:
                created.add(key)
        if not kept:
            continue
        assert _batch_then_punts(vec, kept, now, masks) == expected, text
    assert vec.packets.tolist() == ref.packets.tolist()
    assert vec.bytes.tolist() == ref.bytes.tolist()
    assert vec.stats == ref.stats
    assert list(vec.log) == list(ref.log)
    assert _state_view(vec) == _state_view(ref)
