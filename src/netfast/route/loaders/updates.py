"""The BGP formats as streams of :class:`~netfast.route.loaders.base.Update`: ``bgpdump -m``
text lines, and raw MRT records (TABLE_DUMP, TABLE_DUMP_V2, BGP4MP / BGP4MP_ET) decoded by
:mod:`netfast.route.mrt`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, Literal

from netfast.route import mrt
from netfast.route.loaders.base import (
    MAX_LINE,
    LoadStats,
    RouteFileError,
    Update,
    ValueKind,
    _ascii_int,
    _blocks,
    _is_ascii_number,
    _is_ipv4_address,
    _parse_prefix,
    _prefix_reason,
    _too_long,
    shown,
)

# ---------------------------------------------------------------------------------------------
# bgpdump -m text


def _origin_of_text(as_path: str) -> str:
    """The origin AS of a bgpdump AS path: last token; ``{a,b}`` -> ``a,b``; confederation
    segments ``(..)`` / ``[..]`` skipped."""
    tokens = as_path.replace("{", " {").split()
    for tok in reversed(tokens):
        if tok[0] in "([" or tok[-1] in ")]":
            continue
        return tok.strip("{}")
    return ""


def _lines(stream: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """``(line number, line)`` of a stream, lines cut at ``\\n`` (an overlong line comes as a
    stand-in longer than :data:`MAX_LINE`)."""
    line_no = 0
    for block in _blocks(stream):
        lines = block.split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        for raw in lines:
            line_no += 1
            yield line_no, raw


def _bgpdump_updates(
    stream: BinaryIO, name: str, value: ValueKind, skip_bad: bool, stats: LoadStats
) -> Iterator[Update]:
    for line_no, raw in _lines(stream):
        stats.lines += 1
        if len(raw) > MAX_LINE:
            stats._bad(_too_long(name, line_no), "line_too_long", skip_bad)
            continue
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if not line.strip() or line.startswith("#"):
            continue
        try:
            upd = _bgpdump_line(line, value)
        except ValueError as e:
            reason = e.args[1] if len(e.args) > 1 else "bad_line"
            stats._bad(RouteFileError(name, str(e.args[0]), line=line_no), reason, skip_bad)
            continue
        if upd is None:
            stats.ignored["state_change"] += 1
        elif upd == "ipv6":
            stats.ipv6_skipped += 1
        else:
            yield upd


def _timestamp(text: str) -> float:
    """A bgpdump timestamp: ASCII seconds, optionally ``.`` and ASCII microseconds."""
    whole, dot, frac = text.partition(".")
    if not _is_ascii_number(whole) or len(whole) > 12 or (dot and not _is_ascii_number(frac)):
        raise ValueError(f"bad timestamp {shown(text)} (not a number of seconds)", "bad_number")
    return float(text)


def _bgpdump_line(line: str, value: ValueKind) -> Update | Literal["ipv6"] | None:
    f = line.split("|")
    if f[0] not in ("BGP4MP", "BGP4MP_ET", "TABLE_DUMP", "TABLE_DUMP2", "TABLE_DUMP_V2"):
        raise ValueError(f"unknown record type {shown(f[0])} (not a bgpdump -m line)", "garbage")
    if len(f) < 3:
        raise ValueError(f"{len(f)} '|'-separated fields, need at least 6", "short_line")
    kind = f[2]
    if kind == "STATE":
        return None
    need = 9 if kind in ("A", "B") else 6
    if kind not in ("A", "B", "W"):
        raise ValueError(
            f"unknown entry kind {shown(kind)} (expected A, B, W or STATE)", "bad_kind"
        )
    if len(f) < need:
        raise ValueError(f"{len(f)} '|'-separated fields, need at least {need}", "short_line")
    ts = _timestamp(f[1])
    try:
        peer_as = _ascii_int(f[4], "peer AS", 0xFFFFFFFF)
    except ValueError as e:
        raise ValueError(str(e), "bad_number") from None
    if ":" in f[5]:
        return "ipv6"
    try:
        net, plen = _parse_prefix(f[5])
    except ValueError as e:
        raise ValueError(str(e), _prefix_reason(str(e))) from None
    if kind == "W":
        return Update("W", ts, net, plen, "", f[3], peer_as)
    if value == "origin":
        v = _origin_of_text(f[6])
    elif value == "nexthop":
        v = f[8]
        if not _is_ipv4_address(v):
            raise ValueError(f"next hop {shown(v)} is not an IPv4 address", "bad_next_hop")
    else:
        v = f[6]
    return Update("A", ts, net, plen, v, f[3], peer_as)


# ---------------------------------------------------------------------------------------------
# MRT


def _ip4(addr: int | None) -> str:
    if addr is None:
        return ""
    return f"{addr >> 24}.{(addr >> 16) & 255}.{(addr >> 8) & 255}.{addr & 255}"


def _value_of(attrs: mrt.PathAttributes, value: ValueKind, offset: int) -> str:
    """A route's value; ``offset`` (of its record) names the place of an error."""
    if value == "nexthop":
        nh = attrs.next_hop if attrs.next_hop is not None else attrs.mp_next_hop
        if nh is None:
            raise mrt.MrtError(offset, "an IPv4 announcement without a next hop")
        return _ip4(nh)
    path = attrs.path()
    return mrt.origin_as(path) if value == "origin" else mrt.format_as_path(path)


def _mrt_updates(
    stream: BinaryIO, name: str, value: ValueKind, skip_bad: bool, stats: LoadStats
) -> Iterator[Update]:
    peers: list[mrt.Peer] | None = None
    records = mrt.iter_records(stream)
    while True:
        try:
            rec = next(records)
        except StopIteration:
            return
        except mrt.MrtError as e:
            # Framing is lost: nothing after a cut or corrupt header can be found again.
            stats._bad(RouteFileError(name, e.problem, offset=e.offset), "truncated", skip_bad)
            return
        stats.records += 1
        try:
            mrt.check_type(rec)
            if rec.type in (mrt.MrtType.BGP4MP, mrt.MrtType.BGP4MP_ET):
                yield from _bgp4mp_updates(rec, value, stats)
            elif rec.type == mrt.MrtType.TABLE_DUMP_V2:
                if rec.subtype == mrt.TableDumpV2.PEER_INDEX_TABLE:
                    peers = mrt.parse_peer_index_table(rec)
                elif rec.subtype == mrt.TableDumpV2.RIB_IPV4_UNICAST:
                    yield from _rib_updates(rec, peers, value)
                elif rec.subtype in mrt.IPV6_RIB_SUBTYPES:
                    stats.ipv6_skipped += 1
                elif rec.subtype > 12 or rec.subtype == 0:
                    raise mrt.MrtError(
                        rec.offset + 6, f"unknown TABLE_DUMP_V2 subtype {rec.subtype}"
                    )
                else:
                    stats.ignored[f"table_dump_v2_subtype_{rec.subtype}"] += 1
            elif rec.type == mrt.MrtType.TABLE_DUMP:
                entry = mrt.parse_table_dump(rec)
                if entry is None:
                    stats.ipv6_skipped += 1
                else:
                    yield Update(
                        "A",
                        float(rec.timestamp),
                        entry.net,
                        entry.plen,
                        _value_of(entry.attrs, value, rec.offset),
                        entry.peer_ip,
                        entry.peer_as,
                    )
            else:
                stats.ignored[f"mrt_type_{rec.type}"] += 1
        except mrt.MrtError as e:
            stats._bad(RouteFileError(name, e.problem, offset=e.offset), "bad_record", skip_bad)


def _rib_updates(
    rec: mrt.MrtRecord, peers: list[mrt.Peer] | None, value: ValueKind
) -> Iterator[Update]:
    if peers is None:
        raise mrt.MrtError(rec.offset, "RIB_IPV4_UNICAST record before any PEER_INDEX_TABLE")
    rib = mrt.parse_rib_ipv4_unicast(rec)
    out = []
    for entry in rib.entries:
        if entry.peer_index >= len(peers):
            raise mrt.MrtError(
                rec.offset,
                f"RIB entry peer index {entry.peer_index} beyond the {len(peers)} peers",
            )
        peer = peers[entry.peer_index]
        v = _value_of(entry.attrs, value, rec.offset)
        out.append(Update("A", float(rec.timestamp), rib.net, rib.plen, v, peer.address, peer.asn))
    yield from out


def _bgp4mp_updates(rec: mrt.MrtRecord, value: ValueKind, stats: LoadStats) -> Iterator[Update]:
    msg = mrt.parse_bgp4mp(rec)
    if msg is None:
        stats.ignored[f"bgp4mp_subtype_{rec.subtype}"] += 1
        return
    if isinstance(msg, mrt.Bgp4mpStateChange):
        stats.ignored["state_change"] += 1
        return
    if msg.update is None:
        stats.ignored[f"bgp_message_type_{msg.msg_type}"] += 1
        return
    upd = msg.update
    attrs = upd.attrs
    ts = rec.time
    stats.ipv6_skipped += attrs.ipv6_announced + attrs.ipv6_withdrawn
    if attrs.ipv4_other_safi:
        stats.ignored["ipv4_multicast"] += attrs.ipv4_other_safi
    if attrs.other_afi:
        stats.ignored["other_address_family"] += attrs.other_afi
    # Decode fully before yielding, so a bad record yields nothing (skip_bad drops it whole).
    out = [
        Update("W", ts, net, plen, "", msg.peer_ip, msg.peer_as)
        for net, plen in upd.withdrawn + attrs.mp_ipv4_withdrawn
    ]
    reach = upd.nlri + attrs.mp_ipv4_nlri
    if reach:
        v = _value_of(attrs, value, rec.offset)
        out += [Update("A", ts, net, plen, v, msg.peer_ip, msg.peer_as) for net, plen in reach]
    yield from out
