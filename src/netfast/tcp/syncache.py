"""The SYN cache: half-open connections kept small, hashed and bounded (FreeBSD's syncache).

Contract
--------
A listener does not create a connection for every SYN.  :meth:`SynCache.syn` records the few
facts a SYN carries -- the 4-tuple, the peer's ISN and options -- in an entry of a hashed bucket
and returns the SYN-ACK to send; :meth:`SynCache.ack` matches the third segment of the handshake
(``SEG.ACK == ISS + 1``) against the entry and hands back everything the TCP needs to create the
connection in ESTABLISHED.  A full connection (buffers, queues, timers) exists only for peers
that proved they receive at their address.

Bounds: at most ``bucket_limit`` entries per bucket (the oldest is evicted when a new SYN needs
the room) and ``cache_limit`` in all.  When the cache is full, or when ``cookies="always"``, the
SYN is answered statelessly with a SYN cookie (:mod:`netfast.tcp.syncookie`): the ISS encodes
MSS, window scale and SACK-permitted under a keyed hash with rotating secrets, and the ACK
rebuilds the entry from it.  Cookie connections go without timestamps (the cookie has no room
for them, so the SYN-ACK does not offer them).

A SYN-ACK is retransmitted ``rexmits`` times (after 1, 2, 4 ... seconds); then the entry
expires.  A retransmitted SYN for an existing entry resends the SYN-ACK.  An RST whose sequence
number is exactly the peer's next sequence number removes the entry (RFC 5961's rule).

Counters: ``tcp.syncache.added``, ``.retransmitted``, ``.dup_syn``, ``.expired``,
``.bucket_overflow``, ``.cache_overflow``, ``.completed``, ``.reset``, ``.bad_ack``,
``.cookie_sent``, ``.cookie_ok``, ``.cookie_bad``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from netfast.tcp.config import TcpConfig
from netfast.tcp.isn import IsnGenerator
from netfast.tcp.negotiate import Negotiated, negotiated_from_syn, scale_for
from netfast.tcp.session import with_option
from netfast.tcp.syncookie import CookieOptions, SynCookies
from netfast.wire.seq import SEQ_MASK
from netfast.wire.tcp import TcpFlags, TcpRepr
from netfast.wire.tcp_options import TcpOption, TcpOptions

Key = tuple[int, int, int, int]


@dataclass(slots=True)
class SynEntry:
    """One half-open connection."""

    key: Key
    irs: int
    iss: int
    neg: Negotiated
    ts_offset: int
    created: float
    next_rexmit: float
    rexmits: int = 0
    from_cookie: bool = False
    mss: int = 0
    """The MSS our SYN-ACK announces (0: the cache's configured MSS)."""
    config: TcpConfig | None = field(default=None, repr=False)
    """The listener's settings (window, scale, options offered); None: the cache's."""
    listener: object = field(default=None, repr=False)
    session: tuple[TcpOption, ...] = ()
    """Session options our SYN-ACK answers with (netfast.tcp.session: the T/TCPv2 cookies, a
    Fast Open cookie)."""
    client_cookie: int | None = None
    """The T/TCPv2 client cookie the connection will use (echoed in the SYN-ACK)."""


class SynCache:
    """Hashed buckets of :class:`SynEntry` with per-bucket and total limits and SYN cookies.

    Parameters
    ----------
    config
        The listener's TCP settings (MSS, buffer for the window and its scale, options offered).
    isn
        RFC 6528 ISN generator.
    ts_clock
        Generator of per-connection timestamp offsets (a second keyed hash, so timestamps do
        not reveal the ISN offset).
    cookies
        SYN cookie encoder/validator.
    buckets, bucket_limit, cache_limit
        Table shape and bounds (FreeBSD's defaults: 512 buckets, 30 per bucket).
    cookie_mode
        ``"overflow"`` (cookies when the cache is full), ``"always"`` or ``"never"``.
    """

    def __init__(
        self,
        config: TcpConfig,
        isn: IsnGenerator,
        ts_clock: IsnGenerator,
        cookies: SynCookies,
        *,
        buckets: int = 512,
        bucket_limit: int = 30,
        cache_limit: int | None = None,
        rexmits: int = 3,
        rexmit_initial: float = 1.0,
        cookie_mode: str = "overflow",
        counters: Counter[str] | None = None,
    ) -> None:
        if buckets < 1 or buckets & (buckets - 1):
            raise ValueError(f"buckets = {buckets}: must be a power of two")
        if cookie_mode not in ("overflow", "always", "never"):
            raise ValueError(f"cookie_mode = {cookie_mode!r}")
        self.config = config
        self.isn = isn
        self.ts_clock = ts_clock
        self.cookies = cookies
        self.mask = buckets - 1
        self.table: list[list[SynEntry]] = [[] for _ in range(buckets)]
        self.bucket_limit = bucket_limit
        self.cache_limit = cache_limit if cache_limit is not None else buckets * bucket_limit
        self.rexmits = rexmits
        self.rexmit_initial = rexmit_initial
        self.cookie_mode = cookie_mode
        self.count = 0
        self._next_due: float | None = None
        self.counters: Counter[str] = Counter() if counters is None else counters
        self.rcv_wscale = scale_for(config.rcv_buf) if config.window_scale else 0

    def __len__(self) -> int:
        return self.count

    def _bucket(self, key: Key) -> list[SynEntry]:
        laddr, lport, faddr, fport = key
        # The ISN hash is keyed: a flood cannot aim at one bucket.
        h = self.isn.offset(laddr, lport, faddr, fport)
        return self.table[(h ^ (h >> 16)) & self.mask]

    def _find(self, bucket: list[SynEntry], key: Key) -> SynEntry | None:
        for e in bucket:
            if e.key == key:
                return e
        return None

    # ------------------------------------------------------------------ SYN

    def syn(
        self,
        key: Key,
        seg: TcpRepr,
        now: float,
        listener: object = None,
        mss: int = 0,
        config: TcpConfig | None = None,
        session: tuple[TcpOption, ...] = (),
        client_cookie: int | None = None,
    ) -> TcpRepr:
        """Record a SYN (or answer it with a cookie) and return the SYN-ACK to send.  ``mss`` is
        what the route's MTU allows (0: the configured MSS); ``config`` the listener's settings
        (None: the cache's), which the connection made from the entry must use too;
        ``session`` the session options the SYN-ACK carries and ``client_cookie`` the T/TCPv2
        client cookie of the connection (neither survives a SYN cookie: it has no state)."""
        bucket = self._bucket(key)
        entry = self._find(bucket, key)
        if entry is not None:
            if entry.irs == seg.seq:
                self.counters["tcp.syncache.dup_syn"] += 1
                return self.syn_ack(entry, now)
            self._remove(bucket, entry)  # a new incarnation of the same 4-tuple
        neg = negotiated_from_syn(seg, config or self.config)
        use_cookie = self.cookie_mode == "always"
        if not use_cookie and self.cookie_mode == "overflow" and self.count >= self.cache_limit:
            self.counters["tcp.syncache.cache_overflow"] += 1
            use_cookie = True
        if use_cookie:
            return self._cookie_syn_ack(key, seg, neg, now, mss, config)
        if len(bucket) >= self.bucket_limit:
            self.counters["tcp.syncache.bucket_overflow"] += 1
            self._remove(bucket, bucket[0])  # the oldest makes room
        entry = self.new_entry(
            key, seg, neg, now, mss, config, listener, session=session, client_cookie=client_cookie
        )
        bucket.append(entry)
        self.count += 1
        if self._next_due is None or entry.next_rexmit < self._next_due:
            self._next_due = entry.next_rexmit
        self.counters["tcp.syncache.added"] += 1
        return self.syn_ack(entry, now)

    def new_entry(
        self,
        key: Key,
        seg: TcpRepr,
        neg: Negotiated,
        now: float,
        mss: int,
        config: TcpConfig | None,
        listener: object,
        *,
        session: tuple[TcpOption, ...] = (),
        client_cookie: int | None = None,
    ) -> SynEntry:
        """The entry of a SYN (ISS, timestamp offset, options answered), not stored: :meth:`syn`
        stores it; a passive open by data on SYN keeps it with its connection, whose SYN-ACK
        :meth:`syn_ack` makes from it."""
        laddr, lport, faddr, fport = key
        return SynEntry(
            key=key,
            irs=seg.seq,
            iss=self.isn.isn(laddr, lport, faddr, fport, now),
            neg=neg,
            ts_offset=self.ts_clock.offset(laddr, lport, faddr, fport),
            created=now,
            next_rexmit=now + self.rexmit_initial,
            mss=mss,
            config=config,
            listener=listener,
            session=session,
            client_cookie=client_cookie,
        )

    def _cookie_syn_ack(
        self,
        key: Key,
        seg: TcpRepr,
        neg: Negotiated,
        now: float,
        mss: int,
        config: TcpConfig | None,
    ) -> TcpRepr:
        laddr, lport, faddr, fport = key
        opts = CookieOptions(mss=neg.peer_mss, wscale=neg.snd_wscale, sack_permitted=neg.sack_ok)
        iss = self.cookies.encode(laddr, lport, faddr, fport, seg.seq, opts, now)
        self.counters["tcp.syncache.cookie_sent"] += 1
        # Cookies carry no timestamps: do not offer them.
        entry = SynEntry(
            key=key,
            irs=seg.seq,
            iss=iss,
            neg=Negotiated(neg.peer_mss, neg.snd_wscale, neg.sack_ok, False, 0),
            ts_offset=0,
            created=now,
            next_rexmit=now,
            from_cookie=True,
            mss=mss,
            config=config,
        )
        return self.syn_ack(entry, now)

    def syn_ack(self, entry: SynEntry, now: float) -> TcpRepr:
        """The SYN-ACK for ``entry`` (its options answer what the SYN offered)."""
        cfg = entry.config or self.config
        neg = entry.neg
        ts = None
        if neg.ts_ok:
            ts = (((int(now * 1000) + entry.ts_offset) & SEQ_MASK), neg.ts_recent)
        opts = TcpOptions.build(
            mss=entry.mss or cfg.mss,
            wscale=self._wscale(cfg) if neg.snd_wscale is not None else None,
            sack_permitted=neg.sack_ok,
            timestamps=ts,
        )
        for option in entry.session:
            opts = with_option(opts, option)
        return TcpRepr(
            src_port=entry.key[1],
            dst_port=entry.key[3],
            seq=entry.iss,
            ack=(entry.irs + 1) & SEQ_MASK,
            flags=TcpFlags.SYN | TcpFlags.ACK,
            window=min(cfg.rcv_buf, 0xFFFF),
            options=opts,
        )

    # ------------------------------------------------------------------ ACK, RST

    def ack(self, key: Key, seg: TcpRepr, now: float) -> SynEntry | None:
        """The third segment of a handshake: the completed entry (removed from the cache, or
        rebuilt from a valid cookie), or None when it matches neither (the caller resets)."""
        bucket = self._bucket(key)
        entry = self._find(bucket, key)
        if entry is not None:
            if seg.ack != (entry.iss + 1) & SEQ_MASK or seg.seq != (entry.irs + 1) & SEQ_MASK:
                self.counters["tcp.syncache.bad_ack"] += 1
                return None
            self._remove(bucket, entry)
            self.counters["tcp.syncache.completed"] += 1
            ts = seg.options.timestamps
            if entry.neg.ts_ok and ts is None:
                # The peer agreed to timestamps and then sent none: go without (RFC 7323 3.2
                # allows dropping; being lenient keeps the handshake).
                entry.neg = Negotiated(
                    entry.neg.peer_mss, entry.neg.snd_wscale, entry.neg.sack_ok, False, 0
                )
            elif ts is not None and entry.neg.ts_ok:
                entry.neg = Negotiated(
                    entry.neg.peer_mss, entry.neg.snd_wscale, entry.neg.sack_ok, True, ts.tsval
                )
            return entry
        if self.cookie_mode == "never":
            return None
        laddr, lport, faddr, fport = key
        irs = (seg.seq - 1) & SEQ_MASK
        iss = (seg.ack - 1) & SEQ_MASK
        opts = self.cookies.decode(laddr, lport, faddr, fport, irs, iss, now)
        if opts is None:
            self.counters["tcp.syncache.cookie_bad"] += 1
            return None
        self.counters["tcp.syncache.cookie_ok"] += 1
        return SynEntry(
            key=key,
            irs=irs,
            iss=iss,
            neg=Negotiated(opts.mss, opts.wscale, opts.sack_permitted, False, 0),
            ts_offset=0,
            created=now,
            next_rexmit=now,
            from_cookie=True,
        )

    def rst(self, key: Key, seg: TcpRepr) -> bool:
        """An RST for a half-open connection: remove the entry when its sequence number is
        exactly the one expected (RFC 5961 3.2).  Returns True when an entry went."""
        bucket = self._bucket(key)
        entry = self._find(bucket, key)
        if entry is None or seg.seq != (entry.irs + 1) & SEQ_MASK:
            return False
        self._remove(bucket, entry)
        self.counters["tcp.syncache.reset"] += 1
        return True

    def _wscale(self, cfg: TcpConfig) -> int:
        # The shift the connection will use (TcpConnection.accept_from_syn computes the same).
        if cfg is self.config:
            return self.rcv_wscale
        return scale_for(cfg.rcv_buf) if cfg.window_scale else 0

    def peek(self, key: Key) -> SynEntry | None:
        """The entry of ``key``, left in place."""
        return self._find(self._bucket(key), key)

    def has(self, key: Key) -> bool:
        return self._find(self._bucket(key), key) is not None

    def _remove(self, bucket: list[SynEntry], entry: SynEntry) -> None:
        bucket.remove(entry)
        self.count -= 1

    def drop_listener(self, listener: object) -> None:
        """Forget the half-open connections of a listener that closed."""
        for bucket in self.table:
            for e in [e for e in bucket if e.listener is listener]:
                self._remove(bucket, e)

    # ------------------------------------------------------------------ timers

    def poll(self, now: float) -> list[tuple[Key, TcpRepr]]:
        """Retransmit due SYN-ACKs and expire entries that ran out of retransmissions.  This
        walks the table; it runs once per due time, which :meth:`poll_at` gives."""
        out: list[tuple[Key, TcpRepr]] = []
        if not self.count or self._next_due is None or now < self._next_due:
            return out
        nxt: float | None = None
        for bucket in self.table:
            if not bucket:
                continue
            for e in list(bucket):
                if now < e.next_rexmit:
                    continue
                if e.rexmits >= self.rexmits:
                    self._remove(bucket, e)
                    self.counters["tcp.syncache.expired"] += 1
                    continue
                e.rexmits += 1
                e.next_rexmit = now + self.rexmit_initial * (1 << e.rexmits)
                self.counters["tcp.syncache.retransmitted"] += 1
                out.append((e.key, self.syn_ack(e, now)))
            for e in bucket:
                if nxt is None or e.next_rexmit < nxt:
                    nxt = e.next_rexmit
        self._next_due = nxt
        return out

    def poll_at(self) -> float | None:
        """When :meth:`poll` next has work (an early guess is harmless: poll just returns)."""
        return self._next_due if self.count else None


__all__ = ["Key", "SynCache", "SynEntry"]
