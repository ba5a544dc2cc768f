"""The rule-file parser (what userland ``ipfw`` does before the kernel sees a rule).

:func:`parse_rules` turns rule text into a :class:`~netfast.pfil.ipfw.ruleset.Ruleset`,
:func:`parse_rule` one line into a :class:`~netfast.pfil.ipfw.rules.Rule`, :func:`read_rules`
reads a file (bounded, decoded, named in errors) and :func:`load_rules` does both.  Any malformed
input raises :class:`FirewallError` naming file, rule, line and column, what was expected and
what was found (shown escaped and bounded); nothing else escapes for bad input.

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
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from netfast.pfil import Direction
from netfast.pfil.ipfw.dynamic import StateTimeouts
from netfast.pfil.ipfw.rules import (
    _ACTION_WORDS,
    _ICMP_TYPE_NAMES,
    _PROTO_NAMES,
    _TCP_FLAG_NAMES,
    _UNREACH_NAMES,
    DEFAULT_RULE,
    MAX_RULE,
    NUMBER_STEP,
    SERVICES,
    Action,
    AddrItem,
    AddrSpec,
    PortRanges,
    Rule,
)
from netfast.pfil.ipfw.ruleset import (
    Ruleset,
)
from netfast.route.rib import Rib, prefix_mask
from netfast.textnum import ascii_int, file_lines, has_leading_zero, parse_quad, shown


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
    matcher: str = "auto",
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
    me, interfaces, max_states, timeouts, reply_source, matcher:
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
        matcher=matcher,
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
