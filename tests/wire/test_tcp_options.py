"""TCP options: wire vectors written out by hand from the RFC layouts, malformed input, lenient
parsing, padding and the 40-byte limit, and hypothesis properties over arbitrary bytes."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netfast.wire.errors import MalformedError
from netfast.wire.tcp_options import (
    NOP,
    TTCP_EXID,
    ExperimentalOption,
    FastOpenOption,
    MssOption,
    NopOption,
    SackOption,
    SackPermittedOption,
    TcpOption,
    TcpOptions,
    TimestampsOption,
    TtcpCookies,
    UnknownOption,
    WindowScaleOption,
)

# --- known vectors ------------------------------------------------------------------------------

VECTORS: list[tuple[bytes, TcpOption]] = [
    (b"\x01", NOP),
    (b"\x02\x04\x05\xb4", MssOption(1460)),
    (b"\x03\x03\x07", WindowScaleOption(7)),
    (b"\x04\x02", SackPermittedOption()),
    (b"\x05\x0a\x00\x00\x00\x10\x00\x00\x00\x20", SackOption(((16, 32),))),
    (
        b"\x05\x22" + struct.pack("!8I", 1, 2, 3, 4, 5, 6, 0xFFFFFFFE, 0xFFFFFFFF),
        SackOption(((1, 2), (3, 4), (5, 6), (0xFFFFFFFE, 0xFFFFFFFF))),
    ),
    (b"\x08\x0a\x01\x02\x03\x04\xff\xff\xff\xff", TimestampsOption(0x01020304, 0xFFFFFFFF)),
    (b"\x22\x02", FastOpenOption(b"")),
    (b"\x22\x06abcd", FastOpenOption(b"abcd")),
    (b"\x22\x12" + bytes(range(16)), FastOpenOption(bytes(range(16)))),
    (b"\xfd\x0a\x54\x32\x01\x02\x03\x04\x05\x06", TtcpCookies(0x010203040506)),
    (
        b"\xfe\x10\x54\x32\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00\x00\x07",
        TtcpCookies(2**48 - 1, 7, kind=254),
    ),
    (b"\xfe\x06\xf9\x89\xaa\xbb", ExperimentalOption(254, 0xF989, b"\xaa\xbb")),
    (b"\xfd\x04\x12\x34", ExperimentalOption(253, 0x1234)),
    (b"\xfd\x03\x99", UnknownOption(253, b"\x99")),
    (b"\x13\x12" + bytes(16), UnknownOption(19, bytes(16))),  # TCP-MD5 signature
    (b"\x1c\x04\x80\x10", UnknownOption(28, b"\x80\x10")),  # user timeout
    (b"\x63\x02", UnknownOption(99)),
]


@pytest.mark.parametrize(("wire", "option"), VECTORS, ids=lambda v: repr(v)[:30])
def test_option_vectors(wire: bytes, option: TcpOption) -> None:
    assert option.to_bytes() == wire
    padded = wire + bytes(-len(wire) % 4)
    parsed = TcpOptions.parse(padded)
    assert parsed.items == (option,)
    assert parsed.to_bytes() == padded
    assert option.kind == wire[0]


def test_ttcp_exid_constant_matches_layout() -> None:
    assert TTCP_EXID == 0x5432
    cookies = TtcpCookies(0xA1A2A3A4A5A6, 0xB1B2B3B4B5B6)
    assert cookies.to_bytes() == bytes.fromhex("fd105432a1a2a3a4a5a6b1b2b3b4b5b6")


def test_accessors_on_a_linux_syn() -> None:
    # MSS 1460, SACK_PERM, TS, NOP, WS 7: the 20 option bytes Linux sends on a SYN.
    wire = bytes.fromhex("020405b40402080a0001e24000000000" + "01030307")
    opts = TcpOptions.parse(wire)
    assert opts.mss == 1460
    assert opts.sack_permitted
    assert opts.timestamps == TimestampsOption(0x1E240, 0)
    assert opts.wscale == 7
    assert opts.window_scale == WindowScaleOption(7)
    assert opts.sack_blocks == ()
    assert opts.tfo_cookie is None
    assert opts.ttcp is None
    assert len(opts) == 5 and bool(opts)
    assert opts.to_bytes() == wire
    assert (
        TcpOptions.build(mss=1460, sack_permitted=True, timestamps=(0x1E240, 0), wscale=7) == opts
    )


def test_empty_options() -> None:
    opts = TcpOptions.parse(b"")
    assert not opts and opts.mss is None and opts.wscale is None and not opts.sack_permitted
    assert opts.to_bytes() == b"" and opts.buffer_len() == 0


def test_window_scale_above_14_is_clamped_but_kept() -> None:
    opts = TcpOptions.parse(b"\x03\x03\x0f\x00")
    ws = opts.window_scale
    assert ws is not None and ws.shift == 15 and ws.clamped and ws.effective_shift == 14
    assert opts.wscale == 14
    assert opts.to_bytes() == b"\x03\x03\x0f\x00"
    assert not WindowScaleOption(14).clamped and WindowScaleOption(14).effective_shift == 14


def test_first_of_a_repeated_option_counts() -> None:
    opts = TcpOptions.parse(b"\x02\x04\x05\xb4\x02\x04\x02\x18")
    assert opts.mss == 1460
    assert [o.kind for o in opts] == [2, 2]


def test_eol_ends_the_list_and_padding_is_ignored() -> None:
    opts = TcpOptions.parse(b"\x02\x04\x05\xb4\x00\x02\x04\x01")
    assert opts.items == (MssOption(1460),)
    # Zero padding re-emits identically; an EOL is written when padding is needed.
    assert TcpOptions.parse(b"\x01\x00\x00\x00").to_bytes() == b"\x01\x00\x00\x00"
    assert TcpOptions((NOP, NOP, NOP)).to_bytes() == b"\x01\x01\x01\x00"


def test_tfo_and_ttcp_accessors() -> None:
    opts = TcpOptions.build(tfo_cookie=b"", ttcp=TtcpCookies(5, 6))
    assert opts.tfo_cookie == b""
    assert opts.ttcp == TtcpCookies(5, 6)
    opts = TcpOptions.build(tfo_cookie=b"12345678", sack_blocks=((1, 2), (3, 4)))
    assert opts.tfo_cookie == b"12345678"
    assert opts.sack_blocks == ((1, 2), (3, 4))
    fo = opts.find(FastOpenOption)
    assert fo is not None and not fo.is_request
    assert FastOpenOption().is_request


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mss": 1460},
        {"mss": 1460, "wscale": 7},
        {"mss": 1460, "sack_permitted": True},
        {"timestamps": (1, 2)},
        {"mss": 536, "sack_permitted": True, "timestamps": (1, 2), "wscale": 14},
        {"sack_blocks": ((1, 2), (3, 4), (5, 6))},
        {"timestamps": (1, 2), "sack_blocks": ((1, 2), (3, 4), (5, 6))},
        {"tfo_cookie": b""},
        {"tfo_cookie": b"abcd"},
        {"tfo_cookie": b"abcdef"},
        {"mss": 1460, "tfo_cookie": bytes(16)},
        {"ttcp": TtcpCookies(1)},
        {"ttcp": TtcpCookies(1, 2), "mss": 1460, "wscale": 3},
    ],
)
def test_build_aligns_every_option(kwargs: dict[str, object]) -> None:
    opts = TcpOptions.build(**kwargs)  # type: ignore[arg-type]
    raw = b"".join(o.to_bytes() for o in opts)
    # Built lists need no EOL padding: NOPs already align every option.
    assert len(raw) % 4 == 0
    assert TcpOptions.parse(raw) == opts


# --- malformed input ----------------------------------------------------------------------------

MALFORMED = [
    (b"\x02", "tcp.options.kind = 2", "no length byte"),
    (b"\x01\x01\x01\x08", "tcp.options.kind = 8", "no length byte"),
    (b"\x02\x00\x00\x00", "tcp.options.length = 0", "minimum of 2"),
    (b"\x63\x01\x00\x00", "tcp.options.length = 1", "minimum of 2"),
    (b"\x02\x08\x05\xb4", "tcp.options.length = 8", "past the end"),
    (b"\x02\x05\x05\xb4\x00", "tcp.options.mss.length = 5", "must be 4"),
    (b"\x02\x03\x05\x00", "tcp.options.mss.length = 3", "must be 4"),
    (b"\x03\x04\x07\x00", "tcp.options.wscale.length = 4", "must be 3"),
    (b"\x04\x03\x00\x00", "tcp.options.sack_permitted.length = 3", "must be 2"),
    (b"\x05\x02\x00\x00", "tcp.options.sack.length = 2", "1 to 4 blocks"),
    (b"\x05\x0b" + bytes(10), "tcp.options.sack.length = 11", "2 + 8n"),
    (b"\x05\x03\x00\x00", "tcp.options.sack.length = 3", "2 + 8n"),
    (b"\x08\x08" + bytes(6), "tcp.options.timestamps.length = 8", "must be 10"),
    (b"\x22\x05abc", "tcp.options.fast_open.length = 5", "RFC 7413"),
    (b"\x22\x04ab", "tcp.options.fast_open.length = 4", "RFC 7413"),
    (b"\x22\x14" + bytes(18), "tcp.options.fast_open.length = 20", "RFC 7413"),
    (b"\xfd\x0c\x54\x32" + bytes(8), "tcp.options.ttcp.length = 12", "10 or 16"),
    (b"\xfe\x04\x54\x32", "tcp.options.ttcp.length = 4", "10 or 16"),
    (b"\x63\x32" + bytes(48), "tcp.options.len = 50", "40 bytes"),
    (b"\xfd\x2c\x01\x01" + bytes(40), "tcp.options.len = 44", "40 bytes"),
    (bytes(41), "tcp.options.len = 41", "40 bytes"),
]


@pytest.mark.parametrize(("wire", "where", "problem"), MALFORMED)
def test_malformed_options_name_the_field(wire: bytes, where: str, problem: str) -> None:
    with pytest.raises(MalformedError) as info:
        TcpOptions.parse(wire)
    assert str(info.value).startswith(where + ":")
    assert problem in str(info.value)
    assert info.value.header == "tcp"


def test_lenient_parse_returns_the_good_prefix() -> None:
    wire = b"\x02\x04\x05\xb4\x01\x01\x08\x08" + bytes(8)
    opts, error = TcpOptions.parse_lenient(wire)
    assert opts.items == (MssOption(1460), NOP, NOP)
    assert isinstance(error, MalformedError) and error.field == "options.timestamps.length"
    opts, error = TcpOptions.parse_lenient(b"\x01\x03\x03\x02")
    assert error is None and opts.wscale == 2


def test_emission_limit_is_40_bytes() -> None:
    ts = TimestampsOption(1, 2)
    four_blocks = SackOption(((1, 2), (3, 4), (5, 6), (7, 8)))
    assert TcpOptions((NOP, NOP, ts, NOP, NOP, ts, NOP, NOP, ts, NOP, NOP)).buffer_len() == 38 + 2
    with pytest.raises(ValueError, match="41 bytes"):
        TcpOptions((NOP, NOP, ts, NOP, NOP, ts, NOP, NOP, ts) + (NOP,) * 5).to_bytes()
    with pytest.raises(ValueError, match="46 bytes"):
        TcpOptions((ts, four_blocks, NOP, NOP)).to_bytes()
    assert TcpOptions((NOP, NOP, four_blocks)).buffer_len() == 36


@pytest.mark.parametrize(
    "make",
    [
        lambda: MssOption(65536),
        lambda: MssOption(-1),
        lambda: WindowScaleOption(256),
        lambda: SackOption(()),
        lambda: SackOption(((1, 2),) * 5),
        lambda: SackOption(((1, 2**32),)),
        lambda: SackOption(((1, 2, 3),)),  # type: ignore[arg-type]
        lambda: TimestampsOption(2**32, 0),
        lambda: FastOpenOption(b"abc"),
        lambda: FastOpenOption(b"ab"),
        lambda: FastOpenOption(bytes(18)),
        lambda: TtcpCookies(2**48),
        lambda: TtcpCookies(1, -1),
        lambda: TtcpCookies(1, kind=30),
        lambda: ExperimentalOption(252, 1),
        lambda: ExperimentalOption(253, TTCP_EXID),
        lambda: ExperimentalOption(253, 0x10000),
        lambda: UnknownOption(2, b"\x05\xb4"),
        lambda: UnknownOption(0),
        lambda: UnknownOption(256),
        lambda: UnknownOption(253, b"\x12\x34"),
        lambda: UnknownOption(99, bytes(39)),
    ],
)
def test_building_out_of_range_options_is_a_value_error(make: object) -> None:
    with pytest.raises(ValueError) as info:
        make()  # type: ignore[operator]
    assert not isinstance(info.value, MalformedError)


# --- properties ---------------------------------------------------------------------------------

u32 = st.integers(0, 2**32 - 1)


def _hand_encoded_option() -> st.SearchStrategy[bytes]:
    """Well-formed options encoded here with struct, independently of the module under test."""
    return st.one_of(
        st.just(b"\x01"),
        st.integers(0, 0xFFFF).map(lambda v: struct.pack("!BBH", 2, 4, v)),
        st.integers(0, 255).map(lambda v: bytes((3, 3, v))),
        st.just(b"\x04\x02"),
        st.lists(u32, min_size=2, max_size=8)
        .filter(lambda e: len(e) % 2 == 0)
        .map(lambda e: bytes((5, 2 + 4 * len(e))) + struct.pack(f"!{len(e)}I", *e)),
        st.tuples(u32, u32).map(lambda t: struct.pack("!BBII", 8, 10, *t)),
        st.sampled_from([0, 4, 6, 8, 10, 12, 14, 16])
        .flatmap(lambda n: st.binary(min_size=n, max_size=n))
        .map(lambda c: bytes((34, 2 + len(c))) + c),
        st.tuples(st.sampled_from([253, 254]), st.integers(0, 2**48 - 1)).map(
            lambda t: struct.pack("!BBH", t[0], 10, 0x5432) + t[1].to_bytes(6, "big")
        ),
        st.tuples(st.sampled_from([253, 254]), st.binary(min_size=12, max_size=12)).map(
            lambda t: struct.pack("!BBH", t[0], 16, 0x5432) + t[1]
        ),
        st.tuples(
            st.sampled_from([253, 254]),
            st.integers(0, 0xFFFF).filter(lambda x: x != 0x5432),
            st.binary(max_size=8),
        ).map(lambda t: struct.pack("!BBH", t[0], 4 + len(t[2]), t[1]) + t[2]),
        st.tuples(
            st.integers(6, 255).filter(lambda k: k not in (8, 34, 253, 254)),
            st.binary(max_size=10),
        ).map(lambda t: bytes((t[0], 2 + len(t[1]))) + t[1]),
    )


@st.composite
def option_area(draw: st.DrawFn) -> bytes:
    """A well-formed options area of at most 40 bytes, zero padded to a multiple of 4."""
    raw = b""
    for piece in draw(st.lists(_hand_encoded_option(), max_size=12)):
        if len(raw) + len(piece) <= 40:
            raw += piece
    return raw + bytes(-len(raw) % 4)


@given(option_area())
def test_parse_then_emit_gives_the_same_bytes(area: bytes) -> None:
    opts = TcpOptions.parse(area)
    assert opts.to_bytes() == area
    assert opts.buffer_len() == len(area)
    lenient, error = TcpOptions.parse_lenient(area)
    assert error is None and lenient == opts


@st.composite
def damaged_option_area(draw: st.DrawFn) -> bytes:
    """A well-formed area with a few bytes overwritten or cut off: garbage near the valid."""
    data = bytearray(draw(option_area()))
    for _ in range(draw(st.integers(1, 3))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))])


def _one_raw_option() -> st.SearchStrategy[bytes]:
    """Any kind with any length byte, followed by enough bytes to fill it (or not)."""
    return st.tuples(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=60)).map(
        lambda t: bytes((t[0], t[1])) + t[2]
    )


@given(
    st.one_of(
        st.binary(max_size=60),
        damaged_option_area(),
        st.lists(_one_raw_option(), max_size=3).map(b"".join),
    )
)
def test_arbitrary_bytes_raise_only_malformed(data: bytes) -> None:
    try:
        opts = TcpOptions.parse(data)
    except MalformedError as e:
        prefix, error = TcpOptions.parse_lenient(data)
        assert error is not None and str(error) == str(e)
        # The good prefix is a prefix of what a byte-by-byte walk would accept.
        assert len(prefix.items) <= len(data)
        return
    lenient, error = TcpOptions.parse_lenient(data)
    assert error is None and lenient == opts
    # Anything that parses re-emits to something that parses back the same (if it fits).
    if sum(len(o.to_bytes()) for o in opts) <= 40:
        assert TcpOptions.parse(opts.to_bytes()) == opts


_options = st.one_of(
    st.just(NOP),
    st.builds(MssOption, st.integers(0, 0xFFFF)),
    st.builds(WindowScaleOption, st.integers(0, 255)),
    st.just(SackPermittedOption()),
    st.builds(SackOption, st.lists(st.tuples(u32, u32), min_size=1, max_size=4).map(tuple)),
    st.builds(TimestampsOption, u32, u32),
    st.builds(
        FastOpenOption,
        st.sampled_from([0, 4, 6, 16]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    ),
    st.builds(
        TtcpCookies,
        st.integers(0, 2**48 - 1),
        st.none() | st.integers(0, 2**48 - 1),
        st.sampled_from([253, 254]),
    ),
)


@given(st.lists(_options, max_size=10))
def test_typed_options_round_trip(items: list[TcpOption]) -> None:
    opts = TcpOptions(tuple(items))
    size = sum(len(o.to_bytes()) for o in items)
    if size > 40:
        with pytest.raises(ValueError):
            opts.to_bytes()
        return
    wire = opts.to_bytes()
    assert len(wire) % 4 == 0 and len(wire) - size < 4
    assert TcpOptions.parse(wire) == opts
    assert all(isinstance(o, NopOption) or o.kind == o.to_bytes()[0] for o in items)
