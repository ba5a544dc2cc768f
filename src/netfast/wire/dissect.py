"""Dissection of whole frames for people: what ``netfast pcap show`` prints.

:func:`dissect` walks a captured Ethernet frame layer by layer with the header views and reprs of
this package and returns a :class:`Dissection`: the parsed values of every layer it could read,
the checksum status of every layer that carries one, and -- instead of raising -- the reason the
walk stopped when a header is malformed or cut short.  A capture is evidence, not input to trust:
bad checksums (often an artefact of checksum offload on the capturing host) are reported, never
rejected, and a frame shorter than its IP total length is shown with what is there.

A capture cut short (``tcpdump -s 38``) may end inside any header.  That is the capture's doing,
not the packet's: the walk stops, the reason goes to ``Dissection.cut`` and the packet is shown
as truncated, not malformed.  A header is known to be cut when the record's original length
exceeds the captured bytes, or -- for a transport header -- when the IP total length does.
A header whose own fields are impossible (a UDP length below 8, a TCP data offset below 5) is
malformed either way.

Checksum status per layer is one of ``"ok"``, ``"bad"`` or ``"unverified"`` (the bytes it covers
are not all present: a later fragment, a truncated capture, a UDP checksum of zero).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from netfast.wire.arp import ArpOperation, ArpPacket, ArpRepr
from netfast.wire.errors import TruncatedError, WireError
from netfast.wire.ethernet import EthernetFrame, EthernetRepr, EtherType, mac_to_str
from netfast.wire.icmpv4 import (
    Icmpv4DestUnreachable,
    Icmpv4Echo,
    Icmpv4Message,
    Icmpv4Other,
    Icmpv4Repr,
    Icmpv4TimeExceeded,
    Icmpv4Type,
)
from netfast.wire.ipv4 import IpProtocol, Ipv4Packet, Ipv4Repr, ip_to_str
from netfast.wire.tcp import TcpFlags, TcpRepr, TcpSegment
from netfast.wire.tcp_options import (
    FastOpenOption,
    MssOption,
    NopOption,
    SackOption,
    SackPermittedOption,
    TcpOption,
    TcpOptions,
    TimestampsOption,
    TtcpCookies,
    WindowScaleOption,
)
from netfast.wire.udp import UdpDatagram, UdpRepr

LINKTYPE_ETHERNET = 1

OK = "ok"
BAD = "bad"
UNVERIFIED = "unverified"


@dataclass(slots=True)
class Dissection:
    """What one frame holds, layer by layer.

    Attributes
    ----------
    length:
        Captured frame length in bytes.
    protocol:
        The top protocol recognised, for statistics: ``"TCP"``, ``"UDP"``, ``"ICMP"``, ``"ARP"``,
        ``"IPv4"`` (other protocols and non-first fragments), ``"IPv6"``, ``"other"``.
    ethernet, arp, ipv4, tcp, udp, icmp:
        The parsed value of each layer present (``None`` when absent or unreadable).
    checksums:
        ``{"ip": "ok", "tcp": "bad", ...}`` for every layer with a checksum.
    error:
        Why the walk stopped early (a malformed or truncated header), else ``None``.
    truncated:
        The IP packet is longer than the captured bytes.
    cut:
        When the capture ends inside a header: why the walk stopped there
        (``"capture ends inside the udp header: need 8 bytes, have 4"``), else ``None``.
    """

    length: int
    protocol: str = "other"
    ethernet: EthernetRepr | None = None
    arp: ArpRepr | None = None
    ipv4: Ipv4Repr | None = None
    tcp: TcpRepr | None = None
    udp: UdpRepr | None = None
    icmp: Icmpv4Repr | None = None
    checksums: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    truncated: bool = False
    tcp_options_error: str | None = None
    cut: str | None = None

    @property
    def checksum_ok(self) -> bool:
        """No layer's checksum is known to be bad."""
        return BAD not in self.checksums.values()

    @property
    def malformed(self) -> bool:
        return self.error is not None

    def stop(self, exc: WireError, cut: bool) -> None:
        """End the walk on ``exc``: a cut capture when ``cut`` and ``exc`` is a truncation."""
        if cut and isinstance(exc, TruncatedError):
            self.cut = (
                f"capture ends inside the {exc.header} header: "
                f"need {exc.need} bytes, have {exc.have}"
            )
        else:
            self.error = str(exc)


def dissect(
    frame: bytes | bytearray | memoryview,
    linktype: int = LINKTYPE_ETHERNET,
    orig_len: int | None = None,
) -> Dissection:
    """Dissect one captured frame.  Never raises for any content of ``frame``.

    ``orig_len`` is the frame's length on the wire (a capture record's ``orig_len``); when it
    exceeds ``len(frame)`` a header cut short is reported as ``cut``, not as malformed.
    """
    d = Dissection(length=len(frame))
    if linktype != LINKTYPE_ETHERNET:
        d.error = f"link type {linktype} is not dissected"
        return d
    frame_cut = orig_len is not None and orig_len > len(frame)
    try:
        eth_view = EthernetFrame.new_checked(frame)
        d.ethernet = EthernetRepr.parse(eth_view)
    except WireError as exc:
        d.stop(exc, frame_cut)
        return d
    ethertype = eth_view.inner_ethertype
    payload = eth_view.payload
    if ethertype == EtherType.ARP:
        d.protocol = "ARP"
        try:
            d.arp = ArpRepr.parse(ArpPacket.new_checked(payload))
        except WireError as exc:
            d.stop(exc, frame_cut)
    elif ethertype == EtherType.IPV4:
        d.protocol = "IPv4"
        _dissect_ipv4(d, payload, frame_cut)
    elif ethertype == EtherType.IPV6:
        d.protocol = "IPv6"
    return d


def _dissect_ipv4(d: Dissection, data: memoryview, frame_cut: bool) -> None:
    try:
        header = Ipv4Packet.new_checked_header(data)
        d.ipv4 = Ipv4Repr.parse(header, verify_checksum=False)
    except WireError as exc:
        d.stop(exc, frame_cut)
        return
    d.checksums["ip"] = OK if header.verify_checksum() else BAD
    total = header.total_length
    if total > len(data):
        d.truncated = True
        # Show what was captured; checksums over the cut part cannot be verified.
        packet = Ipv4Packet(data)
    else:
        packet = Ipv4Packet(data[:total])
    ip = d.ipv4
    if ip.frag_offset != 0:
        return  # a later fragment: no transport header to show
    whole = not d.truncated and not ip.more_frags
    l4 = packet.payload
    try:
        if ip.protocol == IpProtocol.TCP:
            d.protocol = "TCP"
            seg = TcpSegment.new_checked(l4)
            d.tcp = _parse_tcp(d, seg, ip)
            d.checksums["tcp"] = (
                (OK if seg.verify_checksum(ip.src, ip.dst) else BAD) if whole else UNVERIFIED
            )
        elif ip.protocol == IpProtocol.UDP:
            d.protocol = "UDP"
            dgram = _udp_datagram(l4, whole)
            d.udp = UdpRepr.parse(dgram, ip.src, ip.dst, verify_checksum=False)
            if not whole or dgram.checksum == 0:
                d.checksums["udp"] = UNVERIFIED
            else:
                d.checksums["udp"] = OK if dgram.verify_checksum(ip.src, ip.dst) else BAD
        elif ip.protocol == IpProtocol.ICMP:
            d.protocol = "ICMP"
            msg = Icmpv4Message.new_checked(l4)
            d.checksums["icmp"] = (OK if msg.verify_checksum() else BAD) if whole else UNVERIFIED
            d.icmp = Icmpv4Repr.parse(msg, verify_checksum=False)
    except WireError as exc:
        # When the IP header says more was sent than captured, a cut header is not the packet's
        # fault, and the transport checksum cannot be checked.
        d.stop(exc, d.truncated or frame_cut)
        if d.cut is not None:
            d.checksums.setdefault(d.protocol.lower(), UNVERIFIED)


def _udp_datagram(l4: memoryview, whole: bool) -> UdpDatagram:
    """The UDP view of ``l4``, checked as far as the bytes present allow.

    In a first fragment or a cut capture the length field rightly claims more than ``l4`` holds;
    only that one check is waived -- the header must still be there and its length possible.
    """
    try:
        return UdpDatagram.new_checked(l4)
    except TruncatedError as exc:
        if whole or exc.field != "length":
            raise
    return UdpDatagram(l4)


def _parse_tcp(d: Dissection, seg: TcpSegment, ip: Ipv4Repr) -> TcpRepr:
    try:
        return TcpRepr.parse(seg, ip.src, ip.dst, verify_checksum=False)
    except WireError as exc:
        if seg.data_offset < 5:
            raise
        # A bad option must not hide the rest of the header: keep the options that parsed.
        options, problem = TcpOptions.parse_lenient(seg.options)
        d.tcp_options_error = str(problem or exc)
        return TcpRepr(
            seg.src_port,
            seg.dst_port,
            seg.seq,
            seg.ack,
            seg.flags,
            seg.window,
            seg.urgent,
            options,
            seg.payload,
        )


# --- one line per packet ----------------------------------------------------------------------

_TCP_FLAG_LETTERS = (
    (TcpFlags.SYN, "S"),
    (TcpFlags.FIN, "F"),
    (TcpFlags.RST, "R"),
    (TcpFlags.PSH, "P"),
    (TcpFlags.URG, "U"),
    (TcpFlags.ECE, "E"),
    (TcpFlags.CWR, "W"),
    (TcpFlags.ACK, "."),
)


def tcp_flags_str(flags: int) -> str:
    """tcpdump's flag letters: ``S`` SYN, ``F`` FIN, ``R`` RST, ``P`` PSH, ``U`` URG, ``E`` ECE,
    ``W`` CWR, ``.`` ACK; ``none`` when no flag is set."""
    return "".join(letter for flag, letter in _TCP_FLAG_LETTERS if flags & flag) or "none"


def _option_str(opt: TcpOption) -> str:
    if isinstance(opt, NopOption):
        return "nop"
    if isinstance(opt, MssOption):
        return f"mss {opt.value}"
    if isinstance(opt, WindowScaleOption):
        return f"wscale {opt.shift}"
    if isinstance(opt, SackPermittedOption):
        return "sackOK"
    if isinstance(opt, SackOption):
        return "sack " + " ".join(f"{left}:{right}" for left, right in opt.blocks)
    if isinstance(opt, TimestampsOption):
        return f"TS val {opt.tsval} ecr {opt.tsecr}"
    if isinstance(opt, FastOpenOption):
        return "tfo cookiereq" if opt.is_request else f"tfo cookie {opt.cookie.hex()}"
    if isinstance(opt, TtcpCookies):
        server = "" if opt.server is None else f" server {opt.server:012x}"
        return f"ttcp client {opt.client:012x}{server}"
    return type(opt).__name__


def _ep(addr: int, port: int | None = None) -> str:
    return ip_to_str(addr) if port is None else f"{ip_to_str(addr)}.{port}"


def summary(d: Dissection) -> str:
    """The packet as one line (without the timestamp), in the manner of ``tcpdump -r``."""
    parts: list[str] = []
    eth = d.ethernet
    vlan = f"vlan {eth.vlan.vid} " if eth is not None and eth.vlan is not None else ""
    ip = d.ipv4
    if d.arp is not None:
        a = d.arp
        if a.operation == ArpOperation.REQUEST:
            text = f"ARP, Request who-has {ip_to_str(a.target_ip)} tell {ip_to_str(a.sender_ip)}"
        elif a.operation == ArpOperation.REPLY:
            text = f"ARP, Reply {ip_to_str(a.sender_ip)} is-at {mac_to_str(a.sender_hw)}"
        else:
            text = f"ARP, operation {a.operation}"
        parts.append(vlan + text)
    elif ip is not None:
        frag = ""
        if ip.more_frags or ip.frag_offset:
            more = "+" if ip.more_frags else ""
            frag = f" (frag id {ip.identification} offset {ip.frag_offset}{more})"
        head = f"{vlan}IP ttl {ip.ttl}{frag} "
        if d.tcp is not None:
            t = d.tcp
            text = (
                f"{_ep(ip.src, t.src_port)} > {_ep(ip.dst, t.dst_port)}: "
                f"Flags [{tcp_flags_str(t.flags)}], seq {t.seq}"
            )
            if t.flags & TcpFlags.ACK:
                text += f", ack {t.ack}"
            text += f", win {t.window}"
            if t.options.items:
                text += ", options [" + ",".join(_option_str(o) for o in t.options.items) + "]"
            text += f", length {len(t.payload)}"
        elif d.udp is not None:
            u = d.udp
            text = (
                f"{_ep(ip.src, u.src_port)} > {_ep(ip.dst, u.dst_port)}: "
                f"UDP, length {u.payload_len}"
            )
        elif d.icmp is not None:
            text = f"{_ep(ip.src)} > {_ep(ip.dst)}: ICMP {_icmp_str(d.icmp)}"
        else:
            proto = _proto_name(ip.protocol)
            text = f"{_ep(ip.src)} > {_ep(ip.dst)}: {proto}, length {ip.payload_len}"
        parts.append(head + text)
    elif d.protocol == "IPv6":
        parts.append(f"{vlan}IP6 (not dissected), length {d.length}")
    elif eth is not None:
        parts.append(
            f"{mac_to_str(eth.src)} > {mac_to_str(eth.dst)}, ethertype 0x{int(eth.ethertype):04x}"
        )
    if d.error is not None:
        parts.append(f"[malformed: {d.error}]")
    if d.tcp_options_error is not None:
        parts.append(f"[bad tcp options: {d.tcp_options_error}]")
    if d.cut is not None:
        parts.append(f"[truncated: {d.cut}]")
    elif d.truncated:
        parts.append("[truncated]")
    parts.append(f"[{checksum_str(d)}]")
    parts.append(f"frame {d.length}")
    return " ".join(parts)


def checksum_str(d: Dissection) -> str:
    """``cksum ok``, ``bad ip cksum``, ``bad ip+tcp cksum``, ``tcp cksum unverified``, or
    ``no cksum`` for frames without one."""
    if not d.checksums:
        return "no cksum"
    bad = [layer for layer, s in d.checksums.items() if s == BAD]
    if bad:
        return f"bad {'+'.join(bad)} cksum"
    unverified = [layer for layer, s in d.checksums.items() if s == UNVERIFIED]
    if unverified:
        return f"{'+'.join(unverified)} cksum unverified"
    return "cksum ok"


def _icmp_str(icmp: Icmpv4Repr) -> str:
    if isinstance(icmp, Icmpv4Echo):
        kind = "echo reply" if icmp.reply else "echo request"
        return f"{kind}, id {icmp.ident}, seq {icmp.seq_no}, length {len(icmp.data)}"
    if isinstance(icmp, Icmpv4DestUnreachable):
        text = f"unreachable ({icmp.code.name.lower().replace('_', ' ')})"
        if icmp.next_hop_mtu:
            text += f", mtu {icmp.next_hop_mtu}"
        return text + _quoted_str(icmp)
    if isinstance(icmp, Icmpv4TimeExceeded):
        return f"time exceeded ({icmp.code.name.lower().replace('_', ' ')})" + _quoted_str(icmp)
    if not isinstance(icmp, Icmpv4Other):
        return type(icmp).__name__
    try:
        name = Icmpv4Type(icmp.msg_type).name.lower().replace("_", " ")
    except ValueError:
        name = f"type {icmp.msg_type}"
    return f"{name}, code {icmp.code}"


def _quoted_str(icmp: Icmpv4DestUnreachable | Icmpv4TimeExceeded) -> str:
    try:
        q = icmp.quoted_ipv4()
    except WireError:
        return ", quote unreadable"
    h = q.header
    return f", quoting {ip_to_str(h.src)} > {ip_to_str(h.dst)} {_proto_name(h.protocol)}"


def _proto_name(protocol: int) -> str:
    try:
        return IpProtocol(protocol).name
    except ValueError:
        return f"proto {protocol}"


# --- statistics -------------------------------------------------------------------------------


@dataclass(slots=True)
class ProtocolStats:
    packets: int = 0
    bytes: int = 0
    bad_checksum: int = 0
    unverified: int = 0
    malformed: int = 0
    truncated: int = 0


@dataclass(slots=True)
class CaptureStats:
    """Per-protocol totals over a capture (what ``--stats`` prints)."""

    by_protocol: dict[str, ProtocolStats] = field(default_factory=dict)
    first_ns: int | None = None
    last_ns: int | None = None

    def add(self, d: Dissection, timestamp_ns: int = 0) -> None:
        s = self.by_protocol.get(d.protocol)
        if s is None:
            s = self.by_protocol[d.protocol] = ProtocolStats()
        s.packets += 1
        s.bytes += d.length
        s.bad_checksum += not d.checksum_ok
        s.unverified += UNVERIFIED in d.checksums.values()
        s.malformed += d.malformed
        s.truncated += d.truncated or d.cut is not None
        if self.first_ns is None:
            self.first_ns = timestamp_ns
        self.last_ns = timestamp_ns

    def rows(self) -> Iterator[tuple[str, ProtocolStats]]:
        """Protocols by packet count, most first."""
        yield from sorted(self.by_protocol.items(), key=lambda kv: (-kv[1].packets, kv[0]))

    @property
    def total(self) -> ProtocolStats:
        t = ProtocolStats()
        for s in self.by_protocol.values():
            t.packets += s.packets
            t.bytes += s.bytes
            t.bad_checksum += s.bad_checksum
            t.unverified += s.unverified
            t.malformed += s.malformed
            t.truncated += s.truncated
        return t


__all__ = [
    "BAD",
    "OK",
    "UNVERIFIED",
    "CaptureStats",
    "Dissection",
    "ProtocolStats",
    "checksum_str",
    "dissect",
    "summary",
    "tcp_flags_str",
]
