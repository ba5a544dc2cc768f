"""Ethernet II frames (IEEE 802.3 clause 3) with IEEE 802.1Q VLAN tags and 802.1ad (QinQ) stacking,
and the paper's Figure 1: the maximal packet and payload rates of Ethernet links.

Contract
--------
:class:`EthernetFrame` is a zero-copy view over a frame as a capture or a link hands it over:
destination, source, EtherType, optional tags, payload -- without preamble, SFD or FCS.  At most
two tags are walked: an outer tag (TPID 0x8100 or the 802.1ad service TPID 0x88A8) and, behind it,
an inner 802.1Q tag (TPID 0x8100).  A third tag is not walked: the frame then reports the VLAN
EtherType as its inner EtherType and the stack drops it as unknown.  The payload runs to the end
of the buffer and so includes any padding a short frame carries (the IP layer slices by its own
length field).

:class:`EthernetRepr` is the validated value of a header: addresses, EtherType and tags.
EtherTypes below 0x0600 are IEEE 802.3 length fields (LLC frames), which this stack does not
handle; parsing rejects them.

Rates (paper, "Data Link Layer", Figure 1)
------------------------------------------
Every frame occupies ``8`` (preamble + SFD) ``+ max(frame, 64) + 12`` (inter-frame gap) byte
times on the wire, where ``frame`` counts the 14-byte header, payload and 4-byte FCS.
:func:`max_rates` derives the packet and payload rates from that; :func:`figure1_table` reproduces
the paper's figure, whose "@64" column is a minimum-size 64-byte frame and whose "@1500" columns
are a 1500-byte payload (a 1518-byte frame): the paper's 81,274 pps at 1 Gb/s is
``10**9 / ((1518 + 20) * 8)``, and its payload column is in bits per second.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from netfast.wire.buffer import Buffer, as_bytes_view
from netfast.wire.errors import MalformedError, TruncatedError

#: Destination, source and EtherType.
HEADER_LEN = 14
#: One 802.1Q / 802.1ad tag: TPID (2 bytes) and TCI (2 bytes).
TAG_LEN = 4
#: At most this many tags are walked.
MAX_TAGS = 2
#: Frame check sequence (CRC-32), present on the wire but not in captures.
FCS_LEN = 4
#: Preamble (7 bytes) and start-of-frame delimiter (1 byte).
PREAMBLE_SFD_LEN = 8
#: Minimum inter-frame gap, in byte times.
IFG_LEN = 12
#: Minimum frame (header + payload + FCS); shorter frames are padded up to it.
MIN_FRAME_LEN = 64
#: Largest standard payload (the Ethernet MTU).
MTU = 1500
#: Largest jumbo frame the paper mentions ("up to 16 kilobytes").
MAX_JUMBO_FRAME_LEN = 16 * 1024
#: The lowest value that is an EtherType; below it the field is an IEEE 802.3 length.
MIN_ETHERTYPE = 0x0600

BROADCAST = b"\xff" * 6

_HEADER = "ethernet"
_U16 = struct.Struct(">H")
_MAC_RE = re.compile(r"[0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}")


class EtherType(IntEnum):
    """EtherTypes this stack knows (IEEE registry)."""

    IPV4 = 0x0800
    ARP = 0x0806
    VLAN = 0x8100
    QINQ = 0x88A8
    IPV6 = 0x86DD


_TAG_TPIDS = frozenset((int(EtherType.VLAN), int(EtherType.QINQ)))


def mac_to_str(mac: Buffer) -> str:
    """Format a 6-byte MAC address as ``aa:bb:cc:dd:ee:ff``.

    Raises
    ------
    ValueError
        When ``mac`` is not 6 bytes long.
    """
    if len(mac) != 6:
        raise ValueError(f"a MAC address is 6 bytes, got {len(mac)}")
    return bytes(mac).hex(":")


def mac_from_str(text: str) -> bytes:
    """Parse ``aa:bb:cc:dd:ee:ff`` (or with ``-`` separators, used consistently) into 6 bytes.

    Raises
    ------
    ValueError
        When ``text`` is not six two-digit hex groups.
    """
    if not isinstance(text, str) or _MAC_RE.fullmatch(text) is None:
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes.fromhex(text.replace(text[2], ""))


@dataclass(frozen=True, slots=True)
class VlanTag:
    """One 802.1Q (TPID 0x8100) or 802.1ad service (TPID 0x88A8) tag.

    Attributes
    ----------
    vid:
        VLAN identifier, 12 bits.
    pcp:
        Priority code point, 3 bits.
    dei:
        Drop eligible indicator.
    tpid:
        The tag protocol identifier that announces this tag.
    """

    vid: int
    pcp: int = 0
    dei: bool = False
    tpid: int = EtherType.VLAN

    def __post_init__(self) -> None:
        if not 0 <= self.vid <= 0xFFF:
            raise ValueError(f"VLAN id {self.vid} is not a 12-bit value")
        if not 0 <= self.pcp <= 7:
            raise ValueError(f"PCP {self.pcp} is not a 3-bit value")
        if self.tpid not in _TAG_TPIDS:
            raise ValueError(f"TPID 0x{self.tpid:04x} is neither 0x8100 nor 0x88a8")

    @property
    def tci(self) -> int:
        """The 16-bit tag control information: PCP, DEI, VID."""
        return (self.pcp << 13) | (int(self.dei) << 12) | self.vid

    @classmethod
    def from_tci(cls, tci: int, tpid: int = EtherType.VLAN) -> VlanTag:
        """The tag whose control information is ``tci``."""
        return cls(vid=tci & 0xFFF, pcp=tci >> 13, dei=bool(tci & 0x1000), tpid=tpid)


class EthernetFrame:
    """Zero-copy view of an Ethernet II frame (no preamble, no FCS).

    ``EthernetFrame(buf)`` does not check anything; :meth:`new_checked` checks that the header and
    every walked tag fit, after which no accessor can fail.
    """

    __slots__ = ("buffer",)

    def __init__(self, buffer: Buffer) -> None:
        self.buffer = as_bytes_view(buffer)

    @classmethod
    def new_checked(cls, buffer: Buffer) -> EthernetFrame:
        """A view whose header and tags are known to fit (raises :class:`TruncatedError`)."""
        frame = cls(buffer)
        frame.check_len()
        return frame

    def check_len(self) -> None:
        """Raise :class:`TruncatedError` unless the header and every walked tag fit the buffer."""
        have = len(self.buffer)
        if have < HEADER_LEN:
            raise TruncatedError(_HEADER, HEADER_LEN, have)
        if _U16.unpack_from(self.buffer, 12)[0] in _TAG_TPIDS:
            if have < HEADER_LEN + TAG_LEN:
                raise TruncatedError(_HEADER, HEADER_LEN + TAG_LEN, have, field="vlan")
            if (
                _U16.unpack_from(self.buffer, 16)[0] == EtherType.VLAN
                and have < HEADER_LEN + 2 * TAG_LEN
            ):
                raise TruncatedError(_HEADER, HEADER_LEN + 2 * TAG_LEN, have, field="vlan")

    # --- addresses and the outer EtherType ----------------------------------------------------

    @property
    def dst(self) -> bytes:
        """Destination MAC address."""
        return bytes(self.buffer[0:6])

    @dst.setter
    def dst(self, value: Buffer) -> None:
        self.buffer[0:6] = value

    @property
    def src(self) -> bytes:
        """Source MAC address."""
        return bytes(self.buffer[6:12])

    @src.setter
    def src(self, value: Buffer) -> None:
        self.buffer[6:12] = value

    @property
    def ethertype(self) -> int:
        """The EtherType field right after the addresses (a TPID when the frame is tagged)."""
        return int(_U16.unpack_from(self.buffer, 12)[0])

    @ethertype.setter
    def ethertype(self, value: int) -> None:
        _U16.pack_into(self.buffer, 12, value)

    # --- tags ---------------------------------------------------------------------------------

    @property
    def tag_count(self) -> int:
        """Number of walked tags: 0, 1 or 2."""
        if _U16.unpack_from(self.buffer, 12)[0] not in _TAG_TPIDS:
            return 0
        return 2 if _U16.unpack_from(self.buffer, 16)[0] == EtherType.VLAN else 1

    @property
    def has_tag(self) -> bool:
        """True when the frame carries at least one VLAN tag."""
        return _U16.unpack_from(self.buffer, 12)[0] in _TAG_TPIDS

    def tag(self, index: int) -> VlanTag:
        """Tag ``index`` (0 is the outermost).

        Raises
        ------
        IndexError
            When the frame has no such tag.
        """
        if not 0 <= index < self.tag_count:
            raise IndexError(f"the frame has {self.tag_count} tag(s), no tag {index}")
        tpid, tci = struct.unpack_from(">HH", self.buffer, 12 + TAG_LEN * index)
        return VlanTag.from_tci(tci, tpid)

    @property
    def tags(self) -> tuple[VlanTag, ...]:
        """Every walked tag, outermost first."""
        return tuple(self.tag(i) for i in range(self.tag_count))

    @property
    def vlan_id(self) -> int | None:
        """VLAN id of the innermost tag (the customer VLAN in QinQ), ``None`` when untagged."""
        n = self.tag_count
        if n == 0:
            return None
        return int(_U16.unpack_from(self.buffer, 10 + TAG_LEN * n)[0]) & 0xFFF

    @property
    def header_len(self) -> int:
        """Header length including tags; also the payload offset."""
        return HEADER_LEN + TAG_LEN * self.tag_count

    @property
    def payload_offset(self) -> int:
        """Offset of the payload in the buffer (same as :attr:`header_len`)."""
        return self.header_len

    @property
    def inner_ethertype(self) -> int:
        """The EtherType of the payload, after the walked tags."""
        return int(_U16.unpack_from(self.buffer, 12 + TAG_LEN * self.tag_count)[0])

    @property
    def payload(self) -> memoryview:
        """The payload (zero-copy), to the end of the buffer: includes any padding."""
        return self.buffer[self.header_len :]


def _known_ethertype(value: int) -> int:
    try:
        return EtherType(value)
    except ValueError:
        return value


@dataclass(frozen=True, slots=True)
class EthernetRepr:
    """An Ethernet II header: addresses, the payload's EtherType and up to two VLAN tags.

    Attributes
    ----------
    dst, src:
        MAC addresses, 6 bytes each.
    ethertype:
        EtherType of the payload (after any tags); an :class:`EtherType` when known.
    tags:
        VLAN tags, outermost first: none, one 802.1Q or 802.1ad tag, or an outer tag followed by
        an inner 802.1Q (TPID 0x8100) tag.
    """

    dst: bytes
    src: bytes
    ethertype: int
    tags: tuple[VlanTag, ...] = ()

    def __post_init__(self) -> None:
        if len(self.dst) != 6 or len(self.src) != 6:
            raise ValueError("MAC addresses are 6 bytes")
        if not MIN_ETHERTYPE <= self.ethertype <= 0xFFFF:
            raise ValueError(f"EtherType 0x{self.ethertype:04x} is outside 0x0600..0xffff")
        if len(self.tags) > MAX_TAGS:
            raise ValueError(f"at most {MAX_TAGS} tags, got {len(self.tags)}")
        if len(self.tags) == 2 and self.tags[1].tpid != EtherType.VLAN:
            raise ValueError("the inner tag of a double-tagged frame must have TPID 0x8100")
        if self.tags and self.ethertype == EtherType.VLAN and len(self.tags) < MAX_TAGS:
            # The parser would walk the 0x8100 as another tag, so such a header cannot round-trip.
            raise ValueError("EtherType 0x8100 after a tag would be read as another tag")

    @property
    def vlan(self) -> VlanTag | None:
        """The innermost tag (the one that selects the VLAN), ``None`` when untagged."""
        return self.tags[-1] if self.tags else None

    @classmethod
    def parse(cls, frame: EthernetFrame) -> EthernetRepr:
        """The header of a checked ``frame``.

        Raises
        ------
        MalformedError
            When the EtherType is an IEEE 802.3 length (an LLC frame).
        """
        ethertype = frame.inner_ethertype
        if ethertype < MIN_ETHERTYPE:
            raise MalformedError(
                _HEADER,
                "an IEEE 802.3 length, not an EtherType (LLC frames are not supported)",
                field="ethertype",
                value=ethertype,
            )
        return cls(frame.dst, frame.src, _known_ethertype(ethertype), frame.tags)

    def buffer_len(self) -> int:
        """Header length in bytes, tags included."""
        return HEADER_LEN + TAG_LEN * len(self.tags)

    def emit(self, frame: EthernetFrame) -> None:
        """Write the whole header (addresses, tags, EtherType) at the start of ``frame``.

        Raises
        ------
        ValueError
            When the buffer is shorter than :meth:`buffer_len`.
        """
        buf = frame.buffer
        if len(buf) < self.buffer_len():
            raise ValueError(f"buffer of {len(buf)} bytes is shorter than {self.buffer_len()}")
        buf[0:6] = self.dst
        buf[6:12] = self.src
        offset = 12
        for tag in self.tags:
            struct.pack_into(">HH", buf, offset, tag.tpid, tag.tci)
            offset += TAG_LEN
        _U16.pack_into(buf, offset, self.ethertype)

    def to_bytes(self, payload: Buffer = b"") -> bytes:
        """The header followed by ``payload``."""
        buf = bytearray(self.buffer_len() + len(payload))
        self.emit(EthernetFrame(buf))
        buf[self.buffer_len() :] = payload
        return bytes(buf)


# --- Figure 1: maximal rates ------------------------------------------------------------------


def wire_len(frame_len: int) -> int:
    """Byte times one frame of ``frame_len`` bytes (header + payload + FCS) occupies on the wire:
    preamble, SFD, the frame padded to 64 bytes, and the inter-frame gap."""
    return PREAMBLE_SFD_LEN + max(frame_len, MIN_FRAME_LEN) + IFG_LEN


def max_rates(bits_per_second: float, frame_len: int) -> tuple[float, float]:
    """Maximal packet and payload rates of an Ethernet link (the paper's Figure 1).

    Parameters
    ----------
    bits_per_second:
        Link speed, e.g. ``1e9`` for Gigabit Ethernet.
    frame_len:
        Frame length in bytes counting the 14-byte header, payload and 4-byte FCS (not preamble or
        gap), from 18 (an empty payload, padded to the 64-byte minimum) to 16384 (a jumbo frame).

    Returns
    -------
    (packets_per_second, payload_bytes_per_second)
        ``payload`` is ``frame_len - 18`` bytes: the bytes between header and FCS that a caller
        filled, padding excluded.

    Raises
    ------
    ValueError
        When the speed is not positive or the frame length is out of range.
    """
    if not bits_per_second > 0:
        raise ValueError(f"link speed must be positive, got {bits_per_second}")
    if not HEADER_LEN + FCS_LEN <= frame_len <= MAX_JUMBO_FRAME_LEN:
        raise ValueError(
            f"frame length {frame_len} is outside {HEADER_LEN + FCS_LEN}..{MAX_JUMBO_FRAME_LEN}"
        )
    pps = bits_per_second / (8 * wire_len(frame_len))
    return pps, pps * (frame_len - HEADER_LEN - FCS_LEN)


class Figure1Row(NamedTuple):
    """One link speed of Figure 1."""

    speed: str
    bits_per_second: float
    pps_64: float
    """Packets per second of minimum-size (64-byte) frames."""
    pps_1500: float
    """Packets per second of full-size frames (1500-byte payload, 1518-byte frame)."""
    payload_bps_1500: float
    """Payload bits per second of full-size frames (the figure's unit for this column)."""


#: The link speeds of Figure 1.
FIGURE1_SPEEDS: tuple[tuple[str, float], ...] = (
    ("10 Mb/s", 10e6),
    ("100 Mb/s", 100e6),
    ("1 Gb/s", 1e9),
    ("10 Gb/s", 10e9),
    ("40 Gb/s", 40e9),
)

#: Speeds the paper did not list, computed the same way: 25, 100 and 400 Gigabit Ethernet.
EXTENDED_SPEEDS: tuple[tuple[str, float], ...] = (
    ("25 Gb/s", 25e9),
    ("100 Gb/s", 100e9),
    ("400 Gb/s", 400e9),
)


def figure1_table(
    speeds: tuple[tuple[str, float], ...] = FIGURE1_SPEEDS,
) -> list[Figure1Row]:
    """The paper's Figure 1, computed: for each speed (the paper's by default), the packet rate of
    64-byte frames and the packet and payload rates of 1500-byte payloads."""
    full_frame = HEADER_LEN + MTU + FCS_LEN
    rows = []
    for label, bps in speeds:
        pps_64, _ = max_rates(bps, MIN_FRAME_LEN)
        pps_1500, payload_1500 = max_rates(bps, full_frame)
        rows.append(Figure1Row(label, bps, pps_64, pps_1500, payload_1500 * 8))
    return rows
