"""ICMPv4 view and repr family against scapy and the real ping/traceroute captures."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from scapy.all import ICMP, IP, UDP, IPerror, Raw, RawPcapReader, UDPerror
from scapy.utils import checksum as scapy_checksum

from netfast.wire.errors import ChecksumError, MalformedError, TruncatedError, WireError
from netfast.wire.icmpv4 import (
    HEADER_LEN,
    DestUnreachableCode,
    Icmpv4DestUnreachable,
    Icmpv4Echo,
    Icmpv4Message,
    Icmpv4Other,
    Icmpv4Repr,
    Icmpv4TimeExceeded,
    Icmpv4Type,
    TimeExceededCode,
    parse_quoted_ipv4,
)
from netfast.wire.ipv4 import IpProtocol, Ipv4Packet, Ipv4Repr, ip_from_str, ip_to_str


def ipv4_packets(path: Path) -> list[Ipv4Packet]:
    return [
        Ipv4Packet.new_checked(bytes(data[14:]))
        for data, _meta in RawPcapReader(str(path))
        if data[12:14] == b"\x08\x00"
    ]


def oracle_checksum(message: bytes) -> int:
    return int(scapy_checksum(message[:2] + b"\0\0" + message[4:]))


def test_real_echo_matches_scapy(shared_data: Path) -> None:
    seen = 0
    for packet in ipv4_packets(shared_data / "pcap" / "icmp-echo.pcap"):
        raw = bytes(packet.payload)
        message = Icmpv4Message.new_checked(raw)
        oracle = IP(bytes(packet.buffer))[ICMP]
        assert (message.msg_type, message.code, message.checksum) == (
            oracle.type,
            oracle.code,
            oracle.chksum,
        )
        assert (message.ident, message.seq_no) == (oracle.id, oracle.seq)
        assert message.verify_checksum()
        assert message.compute_checksum() == oracle_checksum(raw)
        echo = Icmpv4Repr.parse(message)
        assert isinstance(echo, Icmpv4Echo)
        assert echo.data == bytes(oracle.payload)
        assert echo.reply == (oracle.type == 0)
        assert echo.to_bytes() == raw
        seen += 1
    assert seen == 8


def test_real_traceroute(shared_data: Path) -> None:
    kinds: dict[str, int] = {}
    truncated = 0
    for packet in ipv4_packets(shared_data / "pcap" / "icmp-traceroute-ttl-exceeded.pcap"):
        raw = bytes(packet.payload)
        message = Icmpv4Message.new_checked(raw)
        assert message.verify_checksum()
        assert message.compute_checksum() == oracle_checksum(raw)
        parsed = Icmpv4Repr.parse(message)
        kinds[type(parsed).__name__] = kinds.get(type(parsed).__name__, 0) + 1
        if not isinstance(parsed, Icmpv4TimeExceeded):
            continue
        assert parsed.code == TimeExceededCode.TTL_EXCEEDED
        oracle = IP(bytes(packet.buffer))
        quoted = oracle[IPerror]
        found = parsed.quoted_ipv4()
        assert ip_to_str(found.header.src) == quoted.src
        assert ip_to_str(found.header.dst) == quoted.dst
        assert found.header.identification == quoted.id
        assert found.header.ttl == quoted.ttl == 1
        assert found.header.total_length == quoted.len
        if len(parsed.quoted) < found.header.total_length:
            # Usually the quote is cut short: header and 8 bytes of a longer packet.
            truncated += 1
            assert found.payload_head == parsed.quoted[20:]
            assert len(found.payload_head) == 8
        else:
            # Some routers quote the whole packet followed by extensions (RFC 4884): the
            # payload ends at the quoted total length.
            assert len(found.payload_head) == found.header.payload_len
        assert found.payload_head == parsed.quoted[20 : found.header.total_length]
        assert found.payload_head[:8] == bytes(quoted.payload)[:8]
        # Some routers leave garbage in the unused rest-of-header bytes; it is ignored, and the
        # message emitted back differs only there and in the checksum.
        emitted = parsed.to_bytes()
        assert emitted[:2] == raw[:2] and emitted[8:] == raw[8:]
        assert emitted[4:8] == bytes(4)
        assert Icmpv4Message(emitted).verify_checksum()
    assert kinds["Icmpv4TimeExceeded"] == 24 and kinds["Icmpv4Echo"] == 30
    assert truncated == 21


def test_fragmented_echo_checksum_covers_the_reassembled_message(shared_data: Path) -> None:
    """ipv4-fragments-icmp.pcap: the ICMP checksum covers the whole message, so it verifies only
    once the fragments' payloads are put together (by offset)."""
    packets = ipv4_packets(shared_data / "pcap" / "ipv4-fragments-icmp.pcap")
    by_ident: dict[int, list[Ipv4Packet]] = {}
    for packet in packets:
        by_ident.setdefault(packet.identification, []).append(packet)
    assert len(by_ident) == 2
    for fragments in by_ident.values():
        fragments.sort(key=lambda p: p.frag_offset)
        assert [p.more_frags for p in fragments] == [True, True, False]
        message = b"".join(bytes(p.payload) for p in fragments)
        assert not Icmpv4Message(fragments[0].payload).verify_checksum()
        echo = Icmpv4Repr.parse(Icmpv4Message.new_checked(message))
        assert isinstance(echo, Icmpv4Echo)
        assert echo.to_bytes() == message


# --- byte vectors built by scapy -----------------------------------------------------------------


def original_udp() -> bytes:
    return bytes(
        IP(src="198.18.0.1", dst="198.18.0.2", ttl=1, id=77)
        / UDP(sport=4000, dport=53)
        / (b"q" * 100)
    )


def test_frag_needed_matches_scapy() -> None:
    quote = original_udp()[:28]
    raw = bytes(ICMP(type=3, code=4, nexthopmtu=1400) / Raw(quote))
    parsed = Icmpv4Repr.parse(Icmpv4Message.new_checked(raw))
    assert parsed == Icmpv4DestUnreachable(DestUnreachableCode.FRAG_NEEDED, quote, 1400)
    assert Icmpv4Message(raw).next_hop_mtu == 1400
    built = Icmpv4DestUnreachable(DestUnreachableCode.FRAG_NEEDED, quote, next_hop_mtu=1400)
    assert built.to_bytes() == raw
    quoted = built.quoted_ipv4()
    assert quoted.header.total_length == 128 > len(quote)
    assert quoted.header.protocol == IpProtocol.UDP
    assert quoted.payload_head == quote[20:28]
    assert UDPerror(quoted.payload_head).dport == 53


def test_port_unreachable_matches_scapy() -> None:
    quote = original_udp()[:28]
    oracle = ICMP(type=3, code=3) / IPerror(quote[:20]) / UDPerror(quote[20:])
    raw = bytes(oracle)
    parsed = Icmpv4Repr.parse(Icmpv4Message.new_checked(raw))
    assert isinstance(parsed, Icmpv4DestUnreachable)
    assert parsed.code == DestUnreachableCode.PORT_UNREACHABLE
    assert parsed.next_hop_mtu == 0 and parsed.quoted == quote
    assert parsed.msg_type == Icmpv4Type.DEST_UNREACHABLE


def test_other_types_are_kept_generically() -> None:
    raw = bytes(ICMP(type=13, id=5, seq=6, ts_ori=1, ts_rx=2, ts_tx=3))
    parsed = Icmpv4Repr.parse(Icmpv4Message.new_checked(raw))
    assert isinstance(parsed, Icmpv4Other)
    assert (parsed.msg_type, parsed.code) == (Icmpv4Type.TIMESTAMP, 0)
    assert parsed.rest_of_header == b"\x00\x05\x00\x06"
    assert parsed.to_bytes() == raw
    redirect = bytes(ICMP(type=5, code=1, gw="198.18.0.254") / Raw(original_udp()[:28]))
    parsed = Icmpv4Repr.parse(Icmpv4Message.new_checked(redirect))
    assert isinstance(parsed, Icmpv4Other)
    assert parsed.rest_of_header == bytes([198, 18, 0, 254])
    assert parsed.to_bytes() == redirect


def test_echo_reply_of_request() -> None:
    request = Icmpv4Echo(ident=0x1234, seq_no=7, data=b"ping")
    reply = request.make_reply()
    oracle = ICMP(bytes(reply.to_bytes()))
    assert (oracle.type, oracle.id, oracle.seq, bytes(oracle.payload)) == (0, 0x1234, 7, b"ping")
    assert oracle.chksum == oracle_checksum(reply.to_bytes())


# --- round trips ---------------------------------------------------------------------------------

u16 = st.integers(0, 0xFFFF)
data = st.binary(max_size=80)
members = st.one_of(
    st.builds(Icmpv4Echo, u16, u16, data, st.booleans()),
    st.builds(
        lambda code, d, mtu: Icmpv4DestUnreachable(
            code, d, mtu if code == DestUnreachableCode.FRAG_NEEDED else 0
        ),
        st.sampled_from(DestUnreachableCode),
        data,
        u16,
    ),
    st.builds(Icmpv4TimeExceeded, st.sampled_from(TimeExceededCode), data),
    st.builds(
        Icmpv4Other,
        st.integers(0, 255).filter(lambda t: t not in (0, 3, 8, 11)),
        st.integers(0, 255),
        st.binary(min_size=4, max_size=4),
        data,
    ),
)


@given(members)
def test_emit_then_parse(value: Icmpv4Repr) -> None:
    raw = value.to_bytes()
    assert len(raw) == value.buffer_len()
    message = Icmpv4Message.new_checked(raw)
    assert message.verify_checksum()
    assert Icmpv4Repr.parse(message) == value


def _scapy_min_data() -> dict[int, int]:
    """Body bytes scapy's ICMP layer needs per type before it dissects a message at all.

    scapy reads fixed fields for some types (timestamps, address masks, domain-name requests) and
    raises struct.error on shorter messages. The table is probed from the installed scapy rather
    than written down, so a scapy release that adds such a type narrows the oracle by itself.
    """
    need = {}
    for kind in range(256):
        for extra in range(0, 64, 4):
            try:
                ICMP(bytes([kind]) + bytes(7 + extra))
            except Exception:  # any failure means scapy cannot read it yet
                continue
            if extra:
                need[kind] = extra
            break
    return need


_SCAPY_MIN_DATA = _scapy_min_data()


@given(members)
def test_emit_matches_scapy(value: Icmpv4Repr) -> None:
    raw = value.to_bytes()
    assume(len(raw) - 8 >= _SCAPY_MIN_DATA.get(raw[0], 0))
    oracle = ICMP(raw)
    assert oracle.chksum == oracle_checksum(raw)
    rebuilt = ICMP(raw)
    del rebuilt.chksum
    assert bytes(rebuilt) == raw


@given(st.binary(min_size=8, max_size=60))
def test_parse_then_emit(raw: bytes) -> None:
    buf = bytearray(raw)
    kind = buf[0]
    if kind in (0, 8):
        buf[1] = 0
    elif kind == 3:
        buf[1] %= 16
        buf[4:6] = b"\0\0"
        if buf[1] != 4:
            buf[6:8] = b"\0\0"
    elif kind == 11:
        buf[1] %= 2
        buf[4:8] = bytes(4)
    message = Icmpv4Message.new_checked(buf)
    message.fill_checksum()
    assert Icmpv4Repr.parse(message).to_bytes() == bytes(buf)


@given(members)
def test_emit_into_prefilled_buffer(value: Icmpv4Repr) -> None:
    buf = bytearray(b"\xa5" * (value.buffer_len() + 5))
    value.emit(Icmpv4Message(buf))
    assert buf[: value.buffer_len()] == value.to_bytes()
    assert buf[value.buffer_len() :] == b"\xa5" * 5


@pytest.mark.parametrize(
    "value",
    [
        Icmpv4Echo(1, 2),
        Icmpv4DestUnreachable(DestUnreachableCode.FRAG_NEEDED, b"", 1280),
        Icmpv4TimeExceeded(TimeExceededCode.TTL_EXCEEDED, b""),
        Icmpv4Other(13, 0),
    ],
)
def test_emit_into_prefilled_buffer_leaves_no_a5(value: Icmpv4Repr) -> None:
    buf = bytearray(b"\xa5" * HEADER_LEN)
    value.emit(Icmpv4Message(buf))
    assert 0xA5 not in buf


# --- errors --------------------------------------------------------------------------------------


def test_truncated() -> None:
    with pytest.raises(TruncatedError, match=r"^icmpv4: truncated: need 8 bytes, have 7"):
        Icmpv4Message.new_checked(bytes(7))


@pytest.mark.parametrize(
    ("kind", "code", "message"),
    [
        (8, 1, r"^icmpv4\.code = 1: an echo has code 0"),
        (0, 9, r"^icmpv4\.code = 9: an echo has code 0"),
        (3, 16, r"^icmpv4\.code = 16: unknown destination unreachable code"),
        (11, 2, r"^icmpv4\.code = 2: unknown time exceeded code"),
    ],
)
def test_sanity_errors_name_the_field(kind: int, code: int, message: str) -> None:
    buf = bytearray(bytes([kind, code]) + bytes(6) + original_udp()[:28])
    Icmpv4Message(buf).fill_checksum()
    with pytest.raises(MalformedError, match=message):
        Icmpv4Repr.parse(Icmpv4Message.new_checked(buf))


def test_bad_checksum_is_reported() -> None:
    buf = bytearray(Icmpv4Echo(1, 2, b"abc").to_bytes())
    buf[-1] ^= 1
    message = Icmpv4Message.new_checked(buf)
    assert not message.verify_checksum()
    with pytest.raises(ChecksumError, match=r"^icmpv4\.checksum: bad checksum") as info:
        Icmpv4Repr.parse(message)
    assert info.value.expected == oracle_checksum(bytes(buf))
    assert Icmpv4Repr.parse(message, verify_checksum=False) == Icmpv4Echo(1, 2, b"abb")


def test_quoted_header_errors() -> None:
    with pytest.raises(TruncatedError, match=r"^ipv4: truncated: need 20 bytes, have 19"):
        parse_quoted_ipv4(original_udp()[:19])
    quote = bytearray(original_udp()[:28])
    quote[0] = 0x48  # claims a 32-byte header, only 28 quoted
    with pytest.raises(TruncatedError, match=r"^ipv4\.ihl"):
        parse_quoted_ipv4(quote)
    quote[0] = 0x65
    with pytest.raises(MalformedError, match=r"^ipv4\.version = 6"):
        parse_quoted_ipv4(quote)


def test_quoted_checksum_is_checked_only_on_request() -> None:
    quote = bytearray(original_udp()[:28])
    assert parse_quoted_ipv4(quote, verify_checksum=True).header.ttl == 1
    quote[10] ^= 0xFF
    assert parse_quoted_ipv4(quote).header == Ipv4Repr.parse(
        Ipv4Packet(quote), verify_checksum=False
    )
    with pytest.raises(ChecksumError):
        parse_quoted_ipv4(quote, verify_checksum=True)


def test_quote_with_less_than_8_payload_bytes_is_tolerated() -> None:
    quoted = parse_quoted_ipv4(original_udp()[:24])
    assert quoted.payload_head == original_udp()[20:24]
    assert quoted.header.src == ip_from_str("198.18.0.1")


def test_emit_errors_are_api_misuse() -> None:
    for bad in (
        lambda: Icmpv4Echo(1, 2, b"abc").emit(Icmpv4Message(bytearray(10))),
        lambda: Icmpv4Echo(70000, 0),
        lambda: Icmpv4DestUnreachable(DestUnreachableCode.PORT_UNREACHABLE, b"", 1500),
        lambda: Icmpv4Other(256, 0),
        lambda: Icmpv4Other(13, 0, b"abc"),
    ):
        with pytest.raises(ValueError) as info:
            bad()
        assert not isinstance(info.value, WireError)


def test_emit_checksums_only_the_message() -> None:
    value = Icmpv4Echo(1, 2, b"abc")
    buf = bytearray(value.buffer_len() + 6)
    buf[-6:] = b"trails"
    value.emit(Icmpv4Message(buf))
    assert Icmpv4Message(buf[: value.buffer_len()]).verify_checksum()


def test_view_setters() -> None:
    buf = bytearray(12)
    message = Icmpv4Message(buf)
    message.msg_type, message.code = Icmpv4Type.ECHO_REQUEST, 0
    message.ident, message.seq_no = 0xABCD, 9
    buf[8:] = b"data"
    message.fill_checksum()
    oracle = ICMP(bytes(buf))
    assert (oracle.type, oracle.id, oracle.seq) == (8, 0xABCD, 9)
    assert message.checksum == oracle.chksum == oracle_checksum(bytes(buf))
    message.msg_type, message.code = 3, 4
    message.next_hop_mtu = 1400
    assert ICMP(bytes(buf)).nexthopmtu == 1400
    message.rest_of_header = b"\x01\x02\x03\x04"
    assert bytes(message.data) == b"data" and message.rest_of_header == b"\x01\x02\x03\x04"
