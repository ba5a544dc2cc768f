"""The router's ARP cache (RFC 826; RFC 1812 section 3.3.2 for routers), sans-IO.

The packet format -- parsing, its checks, and building requests and replies -- is
:mod:`netfast.wire.arp`'s; this module is the cache and the protocol's behaviour.

Contract
--------
One table per interface maps an IPv4 address to an entry, which is one of

- *static* -- added by :meth:`ArpCache.add_static`; never expires, never changed by ARP traffic;
- *resolved* -- a MAC learned from ARP, valid until ``learned + timeout``;
- *incomplete* -- resolution in progress: requests sent so far, when the next one is due, and a
  hold queue of at most ``hold`` IP packets waiting for the answer.

The forwarding path calls :meth:`ArpCache.lookup` (a pure read) and, on a miss,
:meth:`ArpCache.hold`, which holds the packet and, for a new entry, returns the first
broadcast request.  The hold queue is bounded: a packet that finds it full is dropped (FreeBSD
drops on ``la_hold`` overflow too); ``hold`` says which of ``arp.hold.queued`` /
``arp.hold.overflow`` happened and the caller counts it, since for the router it is the packet's
fate (forwarded packets) or an output event (``ip.out.arp_held``, its own packets).
:meth:`ArpCache.poll` retransmits a request every ``retry_interval`` seconds; after ``retries``
requests without an answer the entry is removed and its held packets are handed back as given up
(the router answers them with host unreachable, RFC 1812 4.3.3.1) -- the next packet starts a
fresh resolution.
Resolved entries past their lifetime are removed by ``poll`` and ignored by ``lookup`` before.

:meth:`ArpCache.input` handles one received ARP packet with RFC 826's merge algorithm: an
existing entry for the sender is updated whatever the target; if the target is one of the
interface's own addresses the sender is also learned, and a request is answered.  Released hold
queues come back to the caller as ``(ifindex, mac, ip_packet)`` to frame and send.

Every received ARP packet ends in exactly one outcome counter (:data:`ARP_INPUT_OUTCOMES`); every
held packet ends in ``arp.hold.released`` or ``arp.hold.timeout`` (or is still held).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from netfast.ip.iface import Interface
from netfast.wire.arp import ArpOperation, ArpPacket, ArpRepr
from netfast.wire.errors import WireError
from netfast.wire.ethernet import BROADCAST, EtherType

_ETH_ARP = EtherType.ARP.to_bytes(2, "big")
_ZERO_MAC = bytes(6)

IN_BAD = "arp.in.bad"
IN_BAD_SENDER = "arp.in.bad_sender"
IN_ADDR_CONFLICT = "arp.in.addr_conflict"
IN_REQUEST = "arp.in.request"
IN_REPLY = "arp.in.reply"
IN_NOT_FOR_US = "arp.in.not_for_us"
#: Exactly one of these counts each ARP packet given to :meth:`ArpCache.input`.
ARP_INPUT_OUTCOMES: tuple[str, ...] = (
    IN_BAD,
    IN_BAD_SENDER,
    IN_ADDR_CONFLICT,
    IN_REQUEST,
    IN_REPLY,
    IN_NOT_FOR_US,
)

HOLD_QUEUED = "arp.hold.queued"
HOLD_OVERFLOW = "arp.hold.overflow"
HOLD_RELEASED = "arp.hold.released"
HOLD_TIMEOUT = "arp.hold.timeout"
OUT_REQUEST = "arp.out.request"
OUT_REPLY = "arp.out.reply"
LEARNED = "arp.learned"
EXPIRED = "arp.expired"
RESOLVE_FAILED = "arp.resolve.failed"

#: Frames to send: ``(ifindex, frame)``.
Frames = list[tuple[int, bytes]]


@dataclass(slots=True)
class ArpEntry:
    """One neighbour.  ``mac`` is None while incomplete."""

    mac: bytes | None
    expires: float
    static: bool = False
    hold: list[bytes] = field(default_factory=list)
    asked: int = 0
    next_try: float = 0.0


@dataclass(slots=True)
class ArpInputResult:
    """What one received ARP packet caused: its outcome counter, frames to send (a reply), and
    the packets released from a hold queue as ``(ifindex, mac, ip_packet)``."""

    outcome: str
    frames: Frames
    released: list[tuple[int, bytes, bytes]]


class ArpCache:
    """Per-interface ARP tables with hold queues and retransmission (see the module docstring).

    Parameters
    ----------
    interfaces:
        The router's interfaces (their MACs and addresses answer and source requests).
    counters:
        Where events are counted (the router's counters).
    timeout:
        Lifetime of a learned entry, seconds (FreeBSD's ``net.link.ether.inet.max_age``, 1200).
    hold:
        Packets an incomplete entry holds (FreeBSD's ``maxhold``).
    retries:
        Requests sent before resolution gives up (FreeBSD's ``maxtries``, 5).
    retry_interval:
        Seconds between requests.
    """

    def __init__(
        self,
        interfaces: Iterable[Interface],
        counters: Counter[str] | None = None,
        *,
        timeout: float = 1200.0,
        hold: int = 16,
        retries: int = 5,
        retry_interval: float = 1.0,
    ) -> None:
        if hold < 0 or retries < 1 or timeout <= 0 or retry_interval <= 0:
            raise ValueError("ARP: hold >= 0, retries >= 1, timeout and retry_interval > 0")
        self.interfaces = {iface.index: iface for iface in interfaces}
        self.counters: Counter[str] = Counter() if counters is None else counters
        self.timeout = timeout
        self.hold_limit = hold
        self.retries = retries
        self.retry_interval = retry_interval
        self.tables: dict[int, dict[int, ArpEntry]] = {i: {} for i in self.interfaces}
        self._own = {i: frozenset(a.addr for a in f.addrs) for i, f in self.interfaces.items()}

    def _table(self, ifindex: int) -> dict[int, ArpEntry]:
        try:
            return self.tables[ifindex]
        except KeyError:
            raise ValueError(f"no interface with index {ifindex}") from None

    # --- the forwarding path's side ----------------------------------------------------------

    def add_static(self, ifindex: int, ip: int, mac: bytes) -> None:
        """A permanent entry (replaces any other entry for ``ip``; held packets stay held until
        the next :meth:`poll` releases them)."""
        if len(mac) != 6:
            raise ValueError("a MAC address is 6 bytes")
        table = self._table(ifindex)
        old = table.get(ip)
        entry = ArpEntry(bytes(mac), float("inf"), static=True)
        if old is not None and old.hold:
            entry.hold = old.hold
        table[ip] = entry

    def lookup(self, ifindex: int, ip: int, now: float) -> bytes | None:
        """The MAC of ``ip`` on ``ifindex`` when resolved and not expired (no side effects)."""
        entry = self._table(ifindex).get(ip)
        if entry is None or entry.expires <= now:
            return None
        return entry.mac

    def hold(self, ifindex: int, ip: int, packet: bytes, now: float) -> tuple[str, Frames]:
        """Hold ``packet`` until ``ip`` resolves (call it after :meth:`lookup` missed).

        Returns
        -------
        (outcome, frames)
            ``"arp.hold.queued"`` or, when the entry's queue is full and the packet is dropped,
            ``"arp.hold.overflow"`` -- the caller counts it, as the packet's fate; and the first
            request when this starts a new resolution.  Only requests are counted here.
        """
        table = self._table(ifindex)
        entry = table.get(ip)
        frames: Frames = []
        if entry is None or (entry.mac is not None and entry.expires <= now):
            entry = ArpEntry(None, float("inf"), asked=1, next_try=now + self.retry_interval)
            table[ip] = entry
            frames.append((ifindex, self.request_frame(ifindex, ip)))
            self.counters[OUT_REQUEST] += 1
        if len(entry.hold) >= self.hold_limit:
            return HOLD_OVERFLOW, frames
        entry.hold.append(packet)
        return HOLD_QUEUED, frames

    def poll(
        self, now: float
    ) -> tuple[Frames, list[tuple[int, bytes]], list[tuple[int, bytes, bytes]]]:
        """Timers at ``now``: retransmit due requests, give up on resolutions out of retries,
        drop expired entries, release queues of entries made static meanwhile.

        Returns
        -------
        (frames, given_up, released)
            Requests to send; held packets whose resolution failed, as ``(ifindex, packet)``;
            held packets now deliverable, as ``(ifindex, mac, packet)``.
        """
        frames: Frames = []
        given_up: list[tuple[int, bytes]] = []
        released: list[tuple[int, bytes, bytes]] = []
        for ifindex, table in self.tables.items():
            for ip in list(table):
                entry = table[ip]
                if entry.mac is not None:
                    if entry.hold:
                        released.extend((ifindex, entry.mac, p) for p in entry.hold)
                        self.counters[HOLD_RELEASED] += len(entry.hold)
                        entry.hold = []
                    if entry.expires <= now:
                        del table[ip]
                        self.counters[EXPIRED] += 1
                    continue
                if entry.next_try > now:
                    continue
                if entry.asked >= self.retries:
                    del table[ip]
                    self.counters[RESOLVE_FAILED] += 1
                    self.counters[HOLD_TIMEOUT] += len(entry.hold)
                    given_up.extend((ifindex, p) for p in entry.hold)
                    continue
                entry.asked += 1
                entry.next_try = now + self.retry_interval
                frames.append((ifindex, self.request_frame(ifindex, ip)))
                self.counters[OUT_REQUEST] += 1
        return frames, given_up, released

    def poll_at(self) -> float | None:
        """When :meth:`poll` next has something to do (None: nothing pending)."""
        times = [
            e.next_try if e.mac is None else e.expires
            for table in self.tables.values()
            for e in table.values()
            if not e.static or e.hold
        ]
        return min(times) if times else None

    # --- frames ------------------------------------------------------------------------------

    def _source_for(self, ifindex: int, target: int) -> int:
        """The interface address on ``target``'s subnet, else its primary, else 0."""
        iface = self.interfaces[ifindex]
        for a in iface.addrs:
            if a.plen and (a.addr ^ target) >> (32 - a.plen) == 0:
                return a.addr
        return iface.primary or 0

    def request_frame(self, ifindex: int, target: int) -> bytes:
        """A broadcast who-has ``target`` from the interface's MAC and address (RFC 826)."""
        mac = self.interfaces[ifindex].mac
        spa = self._source_for(ifindex, target)
        arp = ArpRepr(ArpOperation.REQUEST, mac, spa, _ZERO_MAC, target)
        return BROADCAST + mac + _ETH_ARP + arp.to_bytes()

    # --- received ARP ------------------------------------------------------------------------

    def input(self, ifindex: int, packet: bytes, now: float) -> ArpInputResult:
        """Handle one ARP packet (the Ethernet payload) received on ``ifindex`` (RFC 826,
        "Packet Reception").  Never raises on any content of ``packet``."""
        table = self._table(ifindex)
        counters = self.counters
        try:
            arp = ArpRepr.parse(ArpPacket.new_checked(packet))
        except WireError:  # truncated, or not an Ethernet/IPv4 request or reply
            counters[IN_BAD] += 1
            return ArpInputResult(IN_BAD, [], [])
        sha, spa, tpa = arp.sender_hw, arp.sender_ip, arp.target_ip
        iface = self.interfaces[ifindex]
        if sha[0] & 1 or sha == iface.mac or sha == _ZERO_MAC:
            counters[IN_BAD_SENDER] += 1
            return ArpInputResult(IN_BAD_SENDER, [], [])
        own = self._own[ifindex]
        if spa in own:
            counters[IN_ADDR_CONFLICT] += 1
            return ArpInputResult(IN_ADDR_CONFLICT, [], [])
        released: list[tuple[int, bytes, bytes]] = []
        merged = False
        entry = table.get(spa)
        if entry is not None and not entry.static and spa != 0:
            merged = True
            self._learn(ifindex, entry, sha, now, released)
        for_us = tpa in own
        if for_us and not merged and spa != 0 and (entry is None or not entry.static):
            entry = ArpEntry(None, 0.0)
            table[spa] = entry
            self._learn(ifindex, entry, sha, now, released)
        if not for_us:
            counters[IN_NOT_FOR_US] += 1
            return ArpInputResult(IN_NOT_FOR_US, [], released)
        if arp.operation == ArpOperation.REPLY:
            counters[IN_REPLY] += 1
            return ArpInputResult(IN_REPLY, [], released)
        reply = ArpRepr(ArpOperation.REPLY, iface.mac, tpa, sha, spa).to_bytes()
        counters[IN_REQUEST] += 1
        counters[OUT_REPLY] += 1
        return ArpInputResult(IN_REQUEST, [(ifindex, sha + iface.mac + _ETH_ARP + reply)], released)

    def _learn(
        self,
        ifindex: int,
        entry: ArpEntry,
        mac: bytes,
        now: float,
        released: list[tuple[int, bytes, bytes]],
    ) -> None:
        entry.mac = mac
        entry.expires = now + self.timeout
        entry.asked = 0
        self.counters[LEARNED] += 1
        if entry.hold:
            released.extend((ifindex, mac, p) for p in entry.hold)
            self.counters[HOLD_RELEASED] += len(entry.hold)
            entry.hold = []
