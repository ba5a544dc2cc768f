"""TCP options (RFC 9293 3.2): typed values, parsed from and emitted back to the bytes of a header.

Contract
--------
- :class:`TcpOptions` is the option list, parsed into typed values and emitted back byte for
  byte: EOL (0) ends the list, NOP (1), MSS (2), window scale (3, RFC 7323), SACK-permitted (4)
  and SACK (5, RFC 2018), timestamps (8, RFC 7323), TCP Fast Open (34, RFC 7413), RFC 6994
  experimental options (253/254 with a 16-bit ExID), netfast's T/TCPv2 cookies (an RFC 6994
  option, see :class:`TtcpCookies`), and any other kind kept as ``(kind, data)``.
- The parser never raises anything but :class:`~netfast.wire.errors.MalformedError` on garbage;
  :meth:`TcpOptions.parse_lenient` stops at the first bad option instead and returns what it
  parsed together with the error, for the dissector.
- EOL is not an item of the list: the parser stops at it (RFC 9293 3.2: the bytes after it are
  padding), and emission pads the list to a multiple of 4 bytes with EOL followed by zeros.  So
  a header whose padding is zero re-emits to the same bytes.

The paper's T/TCPv2 ("Session Layer") exchanges a 48-bit client cookie on every segment and a
48-bit server cookie in the first SYN-ACK and later SYNs; :class:`TtcpCookies` is their wire form.
The fixed header these options follow is :mod:`netfast.wire.tcp`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar, TypeAlias, TypeVar

from netfast.wire.buffer import Buffer
from netfast.wire.errors import MalformedError

MAX_OPTIONS_LEN = 40
"""The data offset field (4 bits of 32-bit words) leaves at most 40 bytes for options."""

# Option kinds (IANA "TCP Option Kind Numbers").
OPT_EOL = 0
OPT_NOP = 1
OPT_MSS = 2
OPT_WSCALE = 3
OPT_SACK_PERMITTED = 4
OPT_SACK = 5
OPT_TIMESTAMPS = 8
OPT_FAST_OPEN = 34
OPT_EXP1 = 253
OPT_EXP2 = 254

MAX_WSCALE = 14
"""RFC 7323 2.3: a received shift above 14 is used as 14."""

TTCP_EXID = 0x5432
"""RFC 6994 ExID of netfast's T/TCPv2 cookie option (ASCII ``"T2"``).  Not registered with IANA:
it is for experiments between netfast hosts, as RFC 6994 allows."""
TFO_EXPERIMENTAL_EXID = 0xF989
"""RFC 7413's ExID for the pre-assignment Fast Open option (kind 254); kept as
:class:`ExperimentalOption`."""

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_II = struct.Struct("!II")
_U48_MAX = (1 << 48) - 1
_U32_MAX = 0xFFFFFFFF


def _bad(problem: str, field: str, value: object = None) -> MalformedError:
    return MalformedError("tcp", problem, field=field, value=value)


# --- typed options ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NopOption:
    """No-operation (kind 1), used to align the options that follow."""

    kind: ClassVar[int] = OPT_NOP

    def to_bytes(self) -> bytes:
        return b"\x01"


NOP = NopOption()


@dataclass(frozen=True, slots=True)
class MssOption:
    """Maximum segment size (kind 2, length 4), sent on SYNs."""

    value: int
    kind: ClassVar[int] = OPT_MSS

    def __post_init__(self) -> None:
        if not 0 <= self.value <= 0xFFFF:
            raise ValueError(f"MSS {self.value} does not fit 16 bits")

    def to_bytes(self) -> bytes:
        return b"\x02\x04" + _U16.pack(self.value)


@dataclass(frozen=True, slots=True)
class WindowScaleOption:
    """Window scale (kind 3, length 3, RFC 7323).

    ``shift`` is the value on the wire (0-255); :attr:`effective_shift` is the one to use: RFC 7323
    2.3 says a shift above 14 SHOULD be logged and MUST be treated as 14 (:attr:`clamped`).
    """

    shift: int
    kind: ClassVar[int] = OPT_WSCALE

    def __post_init__(self) -> None:
        if not 0 <= self.shift <= 0xFF:
            raise ValueError(f"window scale shift {self.shift} does not fit 8 bits")

    @property
    def effective_shift(self) -> int:
        return min(self.shift, MAX_WSCALE)

    @property
    def clamped(self) -> bool:
        return self.shift > MAX_WSCALE

    def to_bytes(self) -> bytes:
        return bytes((OPT_WSCALE, 3, self.shift))


@dataclass(frozen=True, slots=True)
class SackPermittedOption:
    """SACK-permitted (kind 4, length 2, RFC 2018), sent on SYNs."""

    kind: ClassVar[int] = OPT_SACK_PERMITTED

    def to_bytes(self) -> bytes:
        return b"\x04\x02"


@dataclass(frozen=True, slots=True)
class SackOption:
    """Selective acknowledgment (kind 5, RFC 2018): 1 to 4 ``(left, right)`` edges, right edge
    exclusive; length ``2 + 8 * len(blocks)``."""

    blocks: tuple[tuple[int, int], ...]
    kind: ClassVar[int] = OPT_SACK

    def __post_init__(self) -> None:
        if not 1 <= len(self.blocks) <= 4:
            raise ValueError(f"a SACK option carries 1 to 4 blocks, not {len(self.blocks)}")
        for block in self.blocks:
            if len(block) != 2 or not all(0 <= e <= _U32_MAX for e in block):
                raise ValueError(f"SACK block {block!r} is not a pair of 32-bit numbers")

    def to_bytes(self) -> bytes:
        n = len(self.blocks)
        edges = [e for block in self.blocks for e in block]
        return bytes((OPT_SACK, 2 + 8 * n)) + struct.pack(f"!{2 * n}I", *edges)


@dataclass(frozen=True, slots=True)
class TimestampsOption:
    """Timestamps (kind 8, length 10, RFC 7323): ``tsval`` and the echoed ``tsecr``."""

    tsval: int
    tsecr: int
    kind: ClassVar[int] = OPT_TIMESTAMPS

    def __post_init__(self) -> None:
        if not (0 <= self.tsval <= _U32_MAX and 0 <= self.tsecr <= _U32_MAX):
            raise ValueError(f"timestamps ({self.tsval}, {self.tsecr}) do not fit 32 bits")

    def to_bytes(self) -> bytes:
        return b"\x08\x0a" + _II.pack(self.tsval, self.tsecr)


@dataclass(frozen=True, slots=True)
class FastOpenOption:
    """TCP Fast Open cookie (kind 34, RFC 7413): a cookie of 4 to 16 bytes of even length, or an
    empty cookie, which requests one."""

    cookie: bytes = b""
    kind: ClassVar[int] = OPT_FAST_OPEN

    def __post_init__(self) -> None:
        n = len(self.cookie)
        if n and not (4 <= n <= 16 and n % 2 == 0):
            raise ValueError(f"a Fast Open cookie is empty or 4-16 bytes of even length, not {n}")

    @property
    def is_request(self) -> bool:
        return not self.cookie

    def to_bytes(self) -> bytes:
        return bytes((OPT_FAST_OPEN, 2 + len(self.cookie))) + self.cookie


@dataclass(frozen=True, slots=True)
class TtcpCookies:
    """netfast's T/TCPv2 cookies: an RFC 6994 experimental option.

    Layout (big-endian)::

        byte 0      kind     253 (or 254; both are RFC 4727 experiment kinds)
        byte 1      length   10 (client cookie only) or 16 (client and server cookie)
        bytes 2-3   ExID     TTCP_EXID (0x5432)
        bytes 4-9   client cookie, 48 bits
        bytes 10-15 server cookie, 48 bits (only when length is 16)

    The paper counts 8 bytes per segment for the client cookie (kind, length, 6 bytes); the
    RFC 6994 ExID, which lets the option share kind 253 with other experiments, makes it 10.
    The client cookie rides on every segment of a connection in both directions; the server
    cookie goes from server to client in the first SYN-ACK and back on later data-bearing SYNs.
    """

    client: int
    server: int | None = None
    kind: int = OPT_EXP1

    def __post_init__(self) -> None:
        if not 0 <= self.client <= _U48_MAX:
            raise ValueError(f"client cookie {self.client} does not fit 48 bits")
        if self.server is not None and not 0 <= self.server <= _U48_MAX:
            raise ValueError(f"server cookie {self.server} does not fit 48 bits")
        if self.kind not in (OPT_EXP1, OPT_EXP2):
            raise ValueError(f"experimental option kind is 253 or 254, not {self.kind}")

    def to_bytes(self) -> bytes:
        if self.server is None:
            return bytes((self.kind, 10)) + ((TTCP_EXID << 48) | self.client).to_bytes(8)
        value = (TTCP_EXID << 96) | (self.client << 48) | self.server
        return bytes((self.kind, 16)) + value.to_bytes(14)


@dataclass(frozen=True, slots=True)
class ExperimentalOption:
    """An RFC 6994 experimental option (kind 253 or 254) with a 16-bit ExID netfast does not
    interpret; ``data`` is what follows the ExID."""

    kind: int
    exid: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if self.kind not in (OPT_EXP1, OPT_EXP2):
            raise ValueError(f"experimental option kind is 253 or 254, not {self.kind}")
        if not 0 <= self.exid <= 0xFFFF:
            raise ValueError(f"ExID {self.exid} does not fit 16 bits")
        if self.exid == TTCP_EXID:
            raise ValueError("use TtcpCookies for the T/TCPv2 ExID")
        if len(self.data) > MAX_OPTIONS_LEN - 4:
            raise ValueError(f"experimental option data of {len(self.data)} bytes is too long")

    def to_bytes(self) -> bytes:
        return bytes((self.kind, 4 + len(self.data))) + _U16.pack(self.exid) + self.data


_TYPED_KINDS = frozenset(
    (
        OPT_EOL,
        OPT_NOP,
        OPT_MSS,
        OPT_WSCALE,
        OPT_SACK_PERMITTED,
        OPT_SACK,
        OPT_TIMESTAMPS,
        OPT_FAST_OPEN,
    )
)


@dataclass(frozen=True, slots=True)
class UnknownOption:
    """Any other option, kept as ``(kind, data)`` so it re-emits unchanged (MD5, UTO, AO, ...).

    Kinds 253/254 land here only when too short to hold an ExID (pre-RFC 6994 experiments).
    """

    kind: int
    data: bytes = b""

    def __post_init__(self) -> None:
        k = self.kind
        if not 0 <= k <= 0xFF or k in _TYPED_KINDS:
            raise ValueError(f"option kind {k} has a typed option class (or is not a kind)")
        if k in (OPT_EXP1, OPT_EXP2) and len(self.data) >= 2:
            raise ValueError("use ExperimentalOption for kinds 253/254 carrying an ExID")
        if len(self.data) > MAX_OPTIONS_LEN - 2:
            raise ValueError(f"option data of {len(self.data)} bytes is too long")

    def to_bytes(self) -> bytes:
        return bytes((self.kind, 2 + len(self.data))) + self.data


TcpOption: TypeAlias = (
    NopOption
    | MssOption
    | WindowScaleOption
    | SackPermittedOption
    | SackOption
    | TimestampsOption
    | FastOpenOption
    | TtcpCookies
    | ExperimentalOption
    | UnknownOption
)
"""Any one parsed option; every one has ``kind`` and ``to_bytes()``."""

_O = TypeVar("_O")

# --- option parsing: one function per kind, given (data, start of the option, its length) ------


def _expect_len(name: str, length: int, want: int) -> None:
    if length != want:
        raise _bad(f"must be {want}", f"options.{name}.length", length)


def _parse_mss(data: bytes, i: int, length: int) -> TcpOption:
    _expect_len("mss", length, 4)
    return MssOption(_U16.unpack_from(data, i + 2)[0])


def _parse_wscale(data: bytes, i: int, length: int) -> TcpOption:
    _expect_len("wscale", length, 3)
    return WindowScaleOption(data[i + 2])


def _parse_sack_permitted(data: bytes, i: int, length: int) -> TcpOption:
    _expect_len("sack_permitted", length, 2)
    return SackPermittedOption()


def _parse_sack(data: bytes, i: int, length: int) -> TcpOption:
    n, rest = divmod(length - 2, 8)
    if rest or not 1 <= n <= 4:
        raise _bad("must be 2 + 8n for 1 to 4 blocks", "options.sack.length", length)
    edges = struct.unpack_from(f"!{2 * n}I", data, i + 2)
    return SackOption(tuple(zip(edges[0::2], edges[1::2], strict=True)))


def _parse_timestamps(data: bytes, i: int, length: int) -> TcpOption:
    _expect_len("timestamps", length, 10)
    tsval, tsecr = _II.unpack_from(data, i + 2)
    return TimestampsOption(tsval, tsecr)


def _parse_fast_open(data: bytes, i: int, length: int) -> TcpOption:
    n = length - 2
    if n and not (4 <= n <= 16 and n % 2 == 0):
        raise _bad(
            "must be 2 (cookie request) or 6-18 and even (RFC 7413)",
            "options.fast_open.length",
            length,
        )
    return FastOpenOption(data[i + 2 : i + length])


def _parse_experimental(data: bytes, i: int, length: int) -> TcpOption:
    kind = data[i]
    if length < 4:
        return UnknownOption(kind, data[i + 2 : i + length])
    exid = _U16.unpack_from(data, i + 2)[0]
    if exid != TTCP_EXID:
        return ExperimentalOption(kind, exid, data[i + 4 : i + length])
    if length == 10:
        return TtcpCookies(int.from_bytes(data[i + 4 : i + 10]), None, kind)
    if length == 16:
        value = int.from_bytes(data[i + 4 : i + 16])
        return TtcpCookies(value >> 48, value & _U48_MAX, kind)
    raise _bad("must be 10 or 16 for the T/TCPv2 cookie option", "options.ttcp.length", length)


_PARSERS = {
    OPT_MSS: _parse_mss,
    OPT_WSCALE: _parse_wscale,
    OPT_SACK_PERMITTED: _parse_sack_permitted,
    OPT_SACK: _parse_sack,
    OPT_TIMESTAMPS: _parse_timestamps,
    OPT_FAST_OPEN: _parse_fast_open,
    OPT_EXP1: _parse_experimental,
    OPT_EXP2: _parse_experimental,
}


def _walk(data: bytes, items: list[TcpOption]) -> None:
    """Append the options in ``data`` to ``items``; raise MalformedError at the first bad one
    (``items`` then holds the good ones before it)."""
    n = len(data)
    if n > MAX_OPTIONS_LEN:
        # Also what keeps every parsed option inside the limits its constructor checks.
        raise _bad(f"longer than the {MAX_OPTIONS_LEN} bytes a header holds", "options.len", n)
    i = 0
    while i < n:
        kind = data[i]
        if kind == OPT_EOL:
            return
        if kind == OPT_NOP:
            items.append(NOP)
            i += 1
            continue
        if i + 1 == n:
            raise _bad(f"has no length byte (offset {i})", "options.kind", kind)
        length = data[i + 1]
        if length < 2:
            raise _bad(
                f"below the minimum of 2 (kind {kind}, offset {i})", "options.length", length
            )
        if i + length > n:
            raise _bad(
                f"runs past the end of the options (kind {kind}, offset {i}, {n - i} bytes left)",
                "options.length",
                length,
            )
        parse = _PARSERS.get(kind)
        if parse is None:
            items.append(UnknownOption(kind, data[i + 2 : i + length]))
        else:
            items.append(parse(data, i, length))
        i += length


@dataclass(frozen=True, slots=True)
class TcpOptions:
    """An ordered list of TCP options (EOL excluded: it ends the list), plus accessors for what the
    TCP engine asks about.  Build one with :meth:`build` or from a tuple of option values."""

    items: tuple[TcpOption, ...] = ()

    # -- parse / emit --

    @classmethod
    def parse(cls, data: Buffer) -> TcpOptions:
        """Parse raw option bytes (the header after byte 20); raise MalformedError on garbage."""
        if not data:
            return EMPTY_OPTIONS
        raw = bytes(data)
        if len(raw) == 12 and raw[:4] == _NOP_NOP_TS:
            # The layout nearly every segment of a timestamped connection carries.
            tsval, tsecr = _II.unpack_from(raw, 4)
            return cls((NOP, NOP, TimestampsOption(tsval, tsecr)))
        items: list[TcpOption] = []
        _walk(raw, items)
        return cls(tuple(items))

    @classmethod
    def parse_lenient(cls, data: Buffer) -> tuple[TcpOptions, MalformedError | None]:
        """Parse up to the first bad option: the options before it and the error (``None`` when
        every option was good)."""
        items: list[TcpOption] = []
        try:
            _walk(bytes(data), items)
        except MalformedError as e:
            return cls(tuple(items)), e
        return cls(tuple(items)), None

    def to_bytes(self) -> bytes:
        """The options as they go on the wire, padded to a multiple of 4 with EOL and zeros.

        Raises ``ValueError`` when they do not fit the 40 bytes a header has room for.
        """
        raw = b"".join(o.to_bytes() for o in self.items)
        if len(raw) > MAX_OPTIONS_LEN:
            raise ValueError(f"TCP options take {len(raw)} bytes, more than {MAX_OPTIONS_LEN}")
        return raw + bytes(-len(raw) % 4)

    def buffer_len(self) -> int:
        """Bytes the options occupy in the header (padded)."""
        return len(self.to_bytes())

    @classmethod
    def build(
        cls,
        *,
        mss: int | None = None,
        wscale: int | None = None,
        sack_permitted: bool = False,
        timestamps: tuple[int, int] | None = None,
        sack_blocks: tuple[tuple[int, int], ...] = (),
        tfo_cookie: bytes | None = None,
        ttcp: TtcpCookies | None = None,
    ) -> TcpOptions:
        """Options in the usual order, each 4-byte aligned with NOPs (MSS, SACK-permitted,
        timestamps, window scale as Linux sends them; then SACK, Fast Open, T/TCPv2).

        ``tfo_cookie=b""`` requests a Fast Open cookie; ``None`` leaves the option out.
        """
        items: list[TcpOption] = []
        if mss is not None:
            items.append(MssOption(mss))
        if timestamps is not None:
            items += [SackPermittedOption()] if sack_permitted else [NOP, NOP]
            items.append(TimestampsOption(*timestamps))
        elif sack_permitted:
            items += [NOP, NOP, SackPermittedOption()]
        if wscale is not None:
            items += [NOP, WindowScaleOption(wscale)]
        if sack_blocks:
            items += [NOP, NOP, SackOption(tuple(sack_blocks))]
        if tfo_cookie is not None:
            if len(tfo_cookie) % 4 == 0:
                items += [NOP, NOP]
            items.append(FastOpenOption(bytes(tfo_cookie)))
        if ttcp is not None:
            if ttcp.server is None:
                items += [NOP, NOP]
            items.append(ttcp)
        return cls(tuple(items))

    # -- accessors --

    def __iter__(self) -> Iterator[TcpOption]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def find(self, cls: type[_O]) -> _O | None:
        """The first option of type ``cls``, or ``None`` (a repeated option: the first counts)."""
        for o in self.items:
            if isinstance(o, cls):
                return o
        return None

    @property
    def mss(self) -> int | None:
        o = self.find(MssOption)
        return None if o is None else o.value

    @property
    def window_scale(self) -> WindowScaleOption | None:
        """The window scale option as sent (see :attr:`wscale` for the shift to use)."""
        return self.find(WindowScaleOption)

    @property
    def wscale(self) -> int | None:
        """The effective window-scale shift (clamped to 14), or ``None`` when not offered."""
        o = self.find(WindowScaleOption)
        return None if o is None else o.effective_shift

    @property
    def sack_permitted(self) -> bool:
        return self.find(SackPermittedOption) is not None

    @property
    def sack_blocks(self) -> tuple[tuple[int, int], ...]:
        o = self.find(SackOption)
        return () if o is None else o.blocks

    @property
    def timestamps(self) -> TimestampsOption | None:
        return self.find(TimestampsOption)

    @property
    def tfo_cookie(self) -> bytes | None:
        """The Fast Open cookie: ``b""`` for a cookie request, ``None`` when absent."""
        o = self.find(FastOpenOption)
        return None if o is None else o.cookie

    @property
    def ttcp(self) -> TtcpCookies | None:
        return self.find(TtcpCookies)


EMPTY_OPTIONS = TcpOptions()
_NOP_NOP_TS = bytes((OPT_NOP, OPT_NOP, OPT_TIMESTAMPS, 10))
