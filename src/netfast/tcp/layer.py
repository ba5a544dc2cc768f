"""TCP as a host stack sees it: input demultiplexing, the timer heap, output and resets
(tcp_input's outer half).

Contract
--------
:class:`TcpLayer` plugs into an IP layer (:class:`netfast.ip.api.IpOutput`, which the host
:class:`~netfast.stack.host.Stack` provides) as the transport for IP protocol 6.  It is sans-IO
like every core: it is handed segments with the time, and hands packets to ``ip.ip_output``; it
never reads a clock.

Input (``tcp_input``): the checksum and header are checked (``tcp.in.bad_checksum``,
``tcp.in.malformed``; segments to a broadcast or multicast address are dropped as
``tcp.in.not_unicast``), then the paper's PCB lookup finds the owner: the 4-tuple hash first,
then the listeners (exact address, then the wildcard), as :class:`netfast.tcp.pcb.PcbTable`
does.  A segment for a connection goes through that connection's input queue
(:class:`netfast.tcp.pcb.InputQueue`): a segment arriving while the connection is being
processed waits on it and is handled by the running pass, and a pass handles at most
``per_pass`` segments (the paper's livelock guard; the rest wait for the next poll).  A segment
for a listener goes to the SYN cache (:mod:`netfast.tcp.syncache`): SYNs create entries, the ACK
that completes a handshake creates the connection and queues it for ``accept``.  A segment nobody
owns is answered with an RST (RFC 9293 3.10.7.1), never an RST with an RST.

The sockets and listening queues the layer hands out (:meth:`TcpLayer.socket`) are
:mod:`netfast.tcp.socket`'s.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import itertools
import random
from collections import Counter
from typing import TYPE_CHECKING

from netfast.tcp.config import TcpConfig
from netfast.tcp.conn import ChallengeAckLimiter, TcpConnection
from netfast.tcp.isn import IsnGenerator
from netfast.tcp.negotiate import negotiated_from_syn
from netfast.tcp.pcb import InputQueue, PcbTable
from netfast.tcp.session import (
    CookieCache,
    ServerCookies,
    SessionOptions,
    client_cookie_ok,
    new_client_cookie,
    session_options,
    tfo_option,
)
from netfast.tcp.socket import Address, Listener, TcpSocket
from netfast.tcp.state import TcpState
from netfast.tcp.syncache import SynCache
from netfast.tcp.syncookie import SynCookies
from netfast.wire.checksum import IPPROTO_TCP
from netfast.wire.errors import ChecksumError, WireError
from netfast.wire.seq import SEQ_MASK, seq_gt
from netfast.wire.tcp import TcpFlags, TcpRepr, TcpSegment
from netfast.wire.tcp_options import TcpOption, TtcpCookies

if TYPE_CHECKING:
    from netfast.ip.api import IpOutput
    from netfast.ip.input import Ipv4Header

SYN, ACK, FIN, RST, PSH = TcpFlags.SYN, TcpFlags.ACK, TcpFlags.FIN, TcpFlags.RST, TcpFlags.PSH
#: Payload bytes of the largest segment handed to a link with TSO (an IPv4 datagram of at most
#: 64 KiB, with room for 60 bytes of TCP header and 20 of IP).
TSO_MAX = 65535 - 80


class TcpLayer:
    """The TCP transport of a host stack (see the module docstring).

    Parameters
    ----------
    ip
        The IP layer below (:class:`netfast.ip.api.IpOutput`); its ``counters`` are the
        layer's.
    rng
        Source of the secrets (ISN, timestamp offsets, cookies) and ephemeral ports.
    config
        Default settings of new connections; its ``mss`` is lowered per route to MTU - 40.
    """

    def __init__(
        self,
        ip: IpOutput,
        rng: random.Random,
        config: TcpConfig | None = None,
        *,
        now: float = 0.0,
        syncache_buckets: int = 512,
        syncache_bucket_limit: int = 30,
        syncache_limit: int | None = None,
        cookie_mode: str = "overflow",
        per_pass: int = 64,
        challenge_ack_limit: int = 1000,
    ) -> None:
        self.ip = ip
        self.rng = rng
        self.config = config or TcpConfig()
        self.counters: Counter[str] = ip.counters
        self.isn = IsnGenerator(rng.randbytes(16))
        self.ts_clock = IsnGenerator(rng.randbytes(16))
        self.cookies = SynCookies(lambda: rng.randbytes(16), now=now)
        self.cookies.counters = self.counters
        self.syncache = SynCache(
            self.config,
            self.isn,
            self.ts_clock,
            self.cookies,
            buckets=syncache_buckets,
            bucket_limit=syncache_bucket_limit,
            cache_limit=syncache_limit,
            cookie_mode=cookie_mode,
            counters=self.counters,
        )
        self.pcbs: PcbTable[TcpConnection, Listener] = PcbTable(
            buckets=4096, hash_key=rng.getrandbits(32)
        )
        self.queues: dict[TcpConnection, InputQueue[TcpRepr]] = {}
        self.per_pass = per_pass
        self.challenge = ChallengeAckLimiter(challenge_ack_limit)
        self.dirty: dict[TcpConnection, None] = {}
        #: During a batch (:meth:`begin_batch`), connections with segments waiting.
        self.batching = False
        self.deferred: dict[TcpConnection, None] = {}
        #: Every registered connection.
        self.conns: dict[TcpConnection, None] = {}
        # The timer heap: (deadline, tie-breaker, connection).  ``_timer_at`` holds the deadline
        # of each connection's live entry (its earliest); other entries of it are stale and
        # skipped.  An entry may fire early (its timer was pushed back): the connection is then
        # re-scheduled.  So a poll costs the connections with timers due, not every connection.
        self._timers: list[tuple[float, int, TcpConnection]] = []
        self._timer_at: dict[TcpConnection, float] = {}
        self._timer_seq = itertools.count()
        #: Connections whose input queue kept segments past a pass's bound.
        self.backlog: dict[TcpConnection, None] = {}
        self.sockets: dict[TcpConnection, TcpSocket] = {}
        #: The session layer (netfast.tcp.session): the cookies we give out as a server, and
        #: the ones servers gave us.
        self.server_cookies = ServerCookies(lambda: rng.randbytes(16), now=now)
        self.cookie_cache = CookieCache()
        #: config_for's results: (id of the base settings, MTU, offload) -> (base, result).
        self._configs: dict[tuple[int, int, bool], tuple[TcpConfig, TcpConfig]] = {}

    # ------------------------------------------------------------------ sockets

    def socket(self) -> TcpSocket:
        return TcpSocket(self)

    def config_for(self, dst: int, base: TcpConfig | None = None) -> TcpConfig:
        """The connection settings toward ``dst``: the MSS the egress MTU allows."""
        cfg = base or self.config
        try:
            mtu = self.ip.mtu_for(dst)
        except ValueError:
            return cfg
        offload = not cfg.tso_max and self.ip.tso_for(dst)
        key = (id(cfg), mtu, offload)
        hit = self._configs.get(key)
        if hit is not None and hit[0] is cfg:
            return hit[1]  # one settings value per (base, MTU, offload): no copy per SYN
        mss = max(64, min(65495, mtu - 40)) if cfg.mss_from_mtu else min(cfg.mss, mtu - 40)
        tso = TSO_MAX if offload else cfg.tso_max
        out = cfg
        if mss != cfg.mss or tso != cfg.tso_max:
            out = dataclasses.replace(cfg, mss=mss, tso_max=tso)
        if len(self._configs) >= 64:
            self._configs.clear()
        self._configs[key] = (cfg, out)
        return out

    def _register(self, conn: TcpConnection) -> None:
        key = (conn.local[0], conn.local[1], conn.remote[0], conn.remote[1])
        self.pcbs.insert(key, conn)
        self.conns[conn] = None
        queue: InputQueue[TcpRepr] = InputQueue(limit=4 * self.per_pass, per_pass=self.per_pass)
        queue.counters = self.counters
        self.queues[conn] = queue
        conn.watchers.append(self._watch)
        self._schedule(conn)

    def _schedule(self, conn: TcpConnection) -> None:
        """Make sure the timer heap wakes ``conn`` no later than its next timer."""
        t = conn.poll_at()
        if t is None:
            return  # a live entry, if any, fires harmlessly and is not renewed
        cur = self._timer_at.get(conn)
        if cur is not None and cur <= t:
            return
        self._timer_at[conn] = t
        heapq.heappush(self._timers, (t, next(self._timer_seq), conn))

    def _watch(self, conn: TcpConnection) -> None:
        sock = self.sockets.get(conn)
        if sock is not None:
            sock._notify()

    def _unregister(self, conn: TcpConnection) -> None:
        key = (conn.local[0], conn.local[1], conn.remote[0], conn.remote[1])
        if key in self.pcbs and self.pcbs.lookup(*key) is conn:
            self.pcbs.remove(key)
        self.queues.pop(conn, None)
        self.dirty.pop(conn, None)
        self.backlog.pop(conn, None)
        self._timer_at.pop(conn, None)  # its heap entries are stale now
        if self.conns.pop(conn, None) is not None:
            # The reassembly queue's counters join the stack's when the connection goes.
            self.counters.update(conn.reass.counters)

    def connect(
        self, local: Address, remote: Address, now: float, config: TcpConfig | None = None
    ) -> TcpConnection:
        """An active open from ``local`` (address 0: the route's source; port 0: ephemeral)
        with ``config`` (None: the layer's), its SYN sent at the next flush."""
        laddr, lport = local
        faddr, fport = remote
        if laddr == 0:
            src = self.ip.source_for(faddr)
            if src is None:
                raise OSError(f"no route to {faddr:#x}")
            laddr = src
        if lport == 0:
            lport = self.pcbs.ephemeral_port(laddr, faddr, fport, self.rng.getrandbits(16))
        elif self.pcbs.lookup(laddr, lport, faddr, fport) is not None:
            raise OSError("address in use: the 4-tuple has a connection")
        iss = self.isn.isn(laddr, lport, faddr, fport, now)
        conn = TcpConnection.connect(
            (laddr, lport),
            (faddr, fport),
            iss,
            self.config_for(faddr, config),
            now,
            ts_offset=self.ts_clock.offset(laddr, lport, faddr, fport),
            challenge=self.challenge,
            counters=self.counters,
        )
        cfg = conn.config
        if cfg.ttcp:
            conn.ttcp_offer = new_client_cookie(self.rng.getrandbits)
        if cfg.ttcp or cfg.fastopen:
            conn.cookie_cache = self.cookie_cache
            if cfg.fastopen:
                conn.syn_cookie = self.cookie_cache.get(faddr, now)
        self._register(conn)
        self.counters["tcp.conn.connect"] += 1
        self.kick(conn)
        return conn

    def kick(self, conn: TcpConnection) -> None:
        """Mark a connection for output at the next :meth:`poll` (after an application call)."""
        self.dirty[conn] = None

    # ------------------------------------------------------------------ input

    def input(self, hdr: Ipv4Header, l4: memoryview, ifindex: int, now: float) -> None:
        c = self.counters
        c["tcp.in.packets"] += 1
        src, dst = hdr.src, hdr.dst
        try:
            view = TcpSegment.new_checked(l4)
            seg = TcpRepr.parse(view, src, dst)
        except ChecksumError:
            c["tcp.in.bad_checksum"] += 1
            return
        except WireError:
            c["tcp.in.malformed"] += 1
            return
        if not self.ip.is_local(dst):  # one of our unicast addresses, never a broadcast
            c["tcp.in.not_unicast"] += 1
            return
        if seg.src_port == 0 or seg.dst_port == 0:
            c["tcp.in.port_zero"] += 1
            return
        owner = self.pcbs.demux(dst, seg.dst_port, src, seg.src_port)
        if isinstance(owner, TcpConnection) and self._reuses_time_wait(owner, seg):
            # A new incarnation of a 4-tuple in TIME_WAIT (RFC 6191, FreeBSD's tcp_twcheck):
            # its SYN starts above the old connection's sequence space (or its timestamp is
            # newer), so old duplicates cannot be mistaken for it.  The old one goes.
            c["tcp.in.time_wait_reused"] += 1
            owner._drop(None)
            self._unregister(owner)
            owner = self.pcbs.lookup_listener(dst, seg.dst_port)
        if isinstance(owner, TcpConnection):
            self._conn_input(owner, seg, now)
        elif isinstance(owner, Listener):
            self._listen_input(owner, (dst, seg.dst_port, src, seg.src_port), seg, now)
        else:
            c["tcp.in.no_socket"] += 1
            self._respond_rst(dst, src, seg, now)

    def deliver(self, src: int, dst: int, seg: TcpRepr, packets: int, now: float) -> bool:
        """Take a data segment merged from ``packets`` received frames that the receive offload
        checked already (checksums, addresses, ports; see :mod:`netfast.link.offload`): queue it
        on its connection as :meth:`input` would.  False, with nothing done, when the segment
        has no synchronized connection to go to (the caller then hands over the frames one by
        one, for the listener, the RST or the counters of the ordinary path)."""
        owner = self.pcbs.demux(dst, seg.dst_port, src, seg.src_port)
        if not isinstance(owner, TcpConnection):
            return False
        c = self.counters
        c["tcp.in.packets"] += packets
        c["tcp.in.coalesced"] += packets - 1
        self._conn_input(owner, seg, now)
        return True

    @staticmethod
    def _reuses_time_wait(conn: TcpConnection, seg: TcpRepr) -> bool:
        flags = int(seg.flags)
        if conn.state != TcpState.TIME_WAIT or flags & (SYN | ACK | RST) != SYN:
            return False
        ts = seg.options.timestamps
        if conn.ts_ok and ts is not None and conn.ts_recent:
            return seq_gt(ts.tsval, conn.ts_recent)
        return seq_gt(seg.seq, conn.rcv_nxt)

    def begin_batch(self) -> None:
        """Hold connections' segments until :meth:`end_batch` (see ``Stack.input_batch``)."""
        self.batching = True

    def end_batch(self, now: float) -> None:
        """Handle every connection's held segments, in-order data runs merged."""
        self.batching = False
        deferred = list(self.deferred)
        self.deferred.clear()
        for conn in deferred:
            queue = self.queues.get(conn)
            if queue is None or conn.state == TcpState.CLOSED:
                continue
            # The batch is the pass: its size is bounded by the link's batch, and all of it is
            # handled now (a per-pass bound here would leave segments behind to overflow the
            # queue when the next batch comes).
            batch: list[TcpRepr] = []
            while queue.pending and queue.drain(batch.append):
                pass
            merged = coalesce(batch)
            self.counters["tcp.in.coalesced"] += len(batch) - len(merged)
            # Output after each (merged) segment, as without batching: an ACK due now goes
            # before the next segment (the duplicate ACKs of a hole are how the sender learns of
            # a loss), and a sender sends what each ACK allows before taking the next -- else
            # a cumulative ACK and a duplicate in one batch would shrink the flight, and with
            # it the slow-start threshold, artificially.
            for seg in merged:
                conn.input(seg, now)
                self._flush(conn, now)

    def _conn_input(self, conn: TcpConnection, seg: TcpRepr, now: float) -> None:
        queue = self.queues[conn]  # every demultiplexed connection is registered
        if not queue.push(seg):
            return  # counted by the queue
        if self.batching:
            self.deferred[conn] = None
            return
        if queue.busy:
            return  # the running pass picks it up
        # A pass that reaches its bound counts tcp.in.queue_yield (the queue shares our
        # counters); the rest waits for the next poll.
        queue.drain(functools.partial(_input_at, conn, now))
        if queue.pending:
            self.backlog[conn] = None
        self._flush(conn, now)

    def _listen_input(
        self, listener: Listener, key: tuple[int, int, int, int], seg: TcpRepr, now: float
    ) -> None:
        c = self.counters
        flags = int(seg.flags)
        if flags & RST:
            self.syncache.rst(key, seg)
            c["tcp.in.listen_rst"] += 1
            return
        if flags & ACK:
            if flags & SYN:
                c["tcp.in.listen_synack"] += 1
                self._respond_rst(key[0], key[2], seg, now)
                return
            # (Only a T/TCPv2 listener has entries with client cookies: no lookup otherwise.)
            pending = self.syncache.peek(key) if listener.config.ttcp else None
            if pending is not None and pending.client_cookie is not None:
                ok = client_cookie_ok(seg.options, pending.client_cookie)
                if ok is not True:  # the entry stays for the real peer's ACK
                    c[
                        "tcp.in.client_cookie_missing" if ok is None else "tcp.in.client_cookie_bad"
                    ] += 1
                    return
            entry = self.syncache.ack(key, seg, now)
            if entry is None:
                c["tcp.in.listen_bad_ack"] += 1
                self._respond_rst(key[0], key[2], seg, now)
                return
            if len(listener.ready) + len(listener.held) >= listener.backlog and not listener.held:
                c["tcp.listen.overflow"] += 1  # the peer retransmits; cookies will rebuild it
                return
            cfg = self.config_for(key[2], listener.config)
            wnd = seg.window << (entry.neg.snd_wscale or 0)
            conn = TcpConnection.accept_from_syn(
                (key[0], key[1]),
                (key[2], key[3]),
                entry.iss,
                entry.irs,
                entry.neg,
                cfg,
                wnd,
                now,
                ts_offset=entry.ts_offset,
                challenge=self.challenge,
                counters=self.counters,
                client_cookie=entry.client_cookie,
            )
            self._register(conn)
            if listener.accept_filter is not None:
                listener.hold(conn)
            else:
                listener.ready.append(conn)
                listener.sock._notify()
            if seg.payload or flags & FIN:
                self._conn_input(conn, seg, now)
            return
        if not flags & SYN:
            c["tcp.in.listen_no_syn"] += 1
            return
        if flags & FIN:
            c["tcp.in.listen_syn_fin"] += 1
            return
        cfg = self.config_for(key[2], listener.config)
        if not (cfg.ttcp or cfg.fastopen):
            synack = self.syncache.syn(key, seg, now, listener, cfg.mss, cfg)
            self._send(key[0], key[2], synack, now)
            return
        session = session_options(seg.options)
        client_cookie = None
        if cfg.ttcp and session.ttcp is not None:
            client_cookie = session.ttcp.client
        if seg.payload and cfg.fastopen:
            age = self._fast_open_cookie(listener, key, session, cfg, now)
            if age is not None:
                self._fast_open(listener, key, seg, session, client_cookie, cfg, now, age > 0)
                return
        answer = self._session_answer(key[2], session, client_cookie, cfg, now, fresh=True)
        synack = self.syncache.syn(
            key, seg, now, listener, cfg.mss, cfg, session=answer, client_cookie=client_cookie
        )
        self._send(key[0], key[2], synack, now)

    # ------------------------------------------------------------------ the session layer

    def _session_answer(
        self,
        client: int,
        session: SessionOptions,
        client_cookie: int | None,
        cfg: TcpConfig,
        now: float,
        *,
        fresh: bool,
    ) -> tuple[TcpOption, ...]:
        """The session options of our SYN-ACK: the client cookie echoed (with a server cookie
        when ``fresh``), or a Fast Open cookie in the form the client asked in."""
        cookies = self.server_cookies
        if client_cookie is not None:
            server = cookies.ttcp(client, now) if fresh else None
            if fresh:
                self.counters["tcp.fastopen.cookie_sent"] += 1
            return (TtcpCookies(client_cookie, server),)
        if cfg.fastopen and session.tfo is not None and fresh:
            self.counters["tcp.fastopen.cookie_sent"] += 1
            return (tfo_option(cookies.tfo(client, now), session.tfo_kind),)
        return ()

    def _fast_open_cookie(
        self,
        listener: Listener,
        key: tuple[int, int, int, int],
        session: SessionOptions,
        cfg: TcpConfig,
        now: float,
    ) -> int | None:
        """Whether a SYN with data may open a connection at once -- a valid server cookie from
        this client address, and room in the listener's queues -- as the age of the secret that
        made the cookie (:meth:`ServerCookies.generation`), or None (counted why)."""
        c = self.counters
        cookie: int | bytes
        if session.ttcp is not None and session.ttcp.server is not None and cfg.ttcp:
            cookie = session.ttcp.server
        elif session.tfo:
            cookie = session.tfo
        else:
            c["tcp.fastopen.no_cookie"] += 1
            return None
        age = self.server_cookies.generation(key[2], cookie, now)
        if age is None:
            c["tcp.fastopen.passive_fail"] += 1
            return None
        pending = listener.fast_open_pending
        for conn in [p for p in pending if p.state != TcpState.SYN_RECEIVED]:
            del pending[conn]
        if len(pending) >= cfg.fastopen_queue or (
            len(listener.ready) + len(listener.held) >= listener.backlog
        ):
            c["tcp.fastopen.queue_full"] += 1
            return None
        return age

    def _fast_open(
        self,
        listener: Listener,
        key: tuple[int, int, int, int],
        seg: TcpRepr,
        session: SessionOptions,
        client_cookie: int | None,
        cfg: TcpConfig,
        now: float,
        renew: bool,
    ) -> None:
        """Open the connection of a SYN with data and a valid cookie at once: the data goes to
        the application now, the SYN-ACK acknowledges it (T/TCPv2; RFC 7413 4.2.2).  With
        ``renew`` (the cookie is of the previous secret) the SYN-ACK brings a new one."""
        laddr, lport, faddr, fport = key
        answer = self._session_answer(faddr, session, client_cookie, cfg, now, fresh=renew)
        neg = negotiated_from_syn(seg, cfg)
        entry = self.syncache.new_entry(
            key, seg, neg, now, cfg.mss, cfg, listener, session=answer, client_cookie=client_cookie
        )
        conn = TcpConnection.accept_fast_open(
            (laddr, lport),
            (faddr, fport),
            entry.iss,
            seg,
            neg,
            cfg,
            now,
            client_cookie=client_cookie,
            synack=functools.partial(self.syncache.syn_ack, entry),
            ts_offset=entry.ts_offset,
            challenge=self.challenge,
            counters=self.counters,
        )
        self.counters["tcp.fastopen.passive"] += 1
        self._register(conn)
        listener.fast_open_pending[conn] = None
        if listener.accept_filter is not None:
            listener.hold(conn)
        else:
            listener.ready.append(conn)
            listener.sock._notify()
        self._flush(conn, now)

    def _respond_rst(self, src: int, dst: int, seg: TcpRepr, now: float) -> None:
        """RFC 9293 3.10.7.1: the reset for a segment nobody owns (never for an RST)."""
        if seg.flags & RST:
            return
        if seg.flags & ACK:
            rst = TcpRepr(seg.dst_port, seg.src_port, seg.ack, 0, RST, 0)
        else:
            ack = (seg.seq + seg.segment_len) & SEQ_MASK
            rst = TcpRepr(seg.dst_port, seg.src_port, 0, ack, RST | ACK, 0)
        self.counters["tcp.out.rst"] += 1
        self._send(src, dst, rst, now)

    # ------------------------------------------------------------------ output and timers

    def _send(self, src: int, dst: int, seg: TcpRepr, now: float, mss: int = 0) -> None:
        self.counters["tcp.out.segments"] += 1
        if mss and len(seg.payload) > mss:
            # Segmentation offload checksums every piece it cuts (in software, or the TAP's
            # partial sum): a sum over the whole would be thrown away.  A stack that does not
            # cut it after all fills it in (HostOutput.ip_output, gso_mss).
            self.counters["tcp.out.tso"] += 1
            data = seg.to_bytes(src, dst, checksum=False)
            reason = self.ip.ip_output(src, dst, IPPROTO_TCP, data, now, gso_mss=mss)
        else:
            data = seg.to_bytes(src, dst)
            reason = self.ip.ip_output(src, dst, IPPROTO_TCP, data, now)
        if reason is not None:
            self.counters["tcp.out.dropped"] += 1

    def _flush(self, conn: TcpConnection, now: float) -> None:
        self.dirty.pop(conn, None)
        src, dst = conn.local[0], conn.remote[0]
        mss = conn.mss if conn.config.tso_max else 0
        for seg in conn.output(now):
            self._send(src, dst, seg, now, mss)
        if conn.state == TcpState.CLOSED:
            self._unregister(conn)
        elif conn in self.conns:
            self._schedule(conn)

    def poll(self, now: float) -> None:
        """Run due timers of connections and of the SYN cache; send what is pending."""
        for key, synack in self.syncache.poll(now):
            self._send(key[0], key[2], synack, now)
        heap = self._timers
        timer_at = self._timer_at
        while heap and heap[0][0] <= now:
            t, _, conn = heapq.heappop(heap)
            if timer_at.get(conn) != t:
                continue  # stale: the connection has an earlier live entry, or is gone
            del timer_at[conn]
            due = conn.poll_at()
            if due is not None and now >= due:
                conn.poll(now)
                self.dirty[conn] = None  # output re-schedules it
            else:
                self._schedule(conn)  # pushed back since: wake it later
        for conn in list(self.backlog):
            queue = self.queues.get(conn)
            if queue is None or not queue.pending:
                del self.backlog[conn]
                continue
            queue.drain(functools.partial(_input_at, conn, now))
            if not queue.pending:
                del self.backlog[conn]
            self.dirty[conn] = None
        for conn in list(self.dirty):
            self._flush(conn, now)

    def poll_at(self) -> float | None:
        if self.dirty or self.backlog:
            return 0.0
        best = self.syncache.poll_at()
        heap = self._timers
        while heap and self._timer_at.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)  # drop stale entries from the top
        if heap and (best is None or heap[0][0] < best):
            best = heap[0][0]
        return best

    def ctlinput(self, icmp_type: int, icmp_code: int, mtu: int, quoted: bytes, now: float) -> None:
        """An ICMP error quoting one of our segments: path MTU (RFC 1191) or a hard error for a
        connection still opening (RFC 1122 4.2.3.9: soft errors leave established ones)."""
        if len(quoted) < 28:
            self.counters["tcp.ctl.short"] += 1
            return
        ihl = (quoted[0] & 0x0F) * 4
        if len(quoted) < ihl + 8:
            self.counters["tcp.ctl.short"] += 1
            return
        src = int.from_bytes(quoted[12:16], "big")
        dst = int.from_bytes(quoted[16:20], "big")
        sport = int.from_bytes(quoted[ihl : ihl + 2], "big")
        dport = int.from_bytes(quoted[ihl + 2 : ihl + 4], "big")
        conn = self.pcbs.lookup(src, sport, dst, dport)
        if conn is None:
            self.counters["tcp.ctl.no_conn"] += 1
            return
        if icmp_type == 3 and icmp_code == 4:
            self.counters["tcp.ctl.frag_needed"] += 1
            if mtu >= 68:
                conn.pmtu_update(mtu)
                self.dirty[conn] = None
            return
        if icmp_type == 3 and conn.state == TcpState.SYN_SENT and icmp_code in (2, 3):
            self.counters["tcp.ctl.unreachable"] += 1
            conn._drop("ECONNREFUSED")
            self._unregister(conn)
            return
        self.counters["tcp.ctl.soft_error"] += 1


def coalesce(segs: list[TcpRepr]) -> list[TcpRepr]:
    """Merge runs of segments that a receiver may treat as one (the rules of Linux's GRO): each
    carries data and no flag but ACK (PSH may end a run), the next begins where the previous
    ends, and acknowledgment, window and option bytes are the same.  A pure cumulative ACK
    followed by a larger one is dropped for it (:func:`_thins`).  Anything else is left as it
    came, in order."""
    if len(segs) < 2:
        return segs
    out: list[TcpRepr] = []
    run: list[TcpRepr] = []

    def close_run() -> None:
        if len(run) == 1:
            out.append(run[0])
        elif run:
            first, last = run[0], run[-1]
            payload = b"".join(s.payload for s in run)
            out.append(dataclasses.replace(first, flags=last.flags, payload=payload))
        run.clear()

    for seg in segs:
        if out and not run and _thins(out[-1], seg):
            # A newer cumulative ACK makes an earlier pure ACK of the batch redundant.
            out[-1] = seg
            continue
        if run:
            prev = run[-1]
            if (
                int(seg.flags) & ~int(PSH) == int(ACK)
                and int(prev.flags) == int(ACK)
                and seg.payload
                and seg.seq == (prev.seq + len(prev.payload)) & SEQ_MASK
                and seg.ack == prev.ack
                and seg.window == prev.window
                and seg.options == prev.options
            ):
                run.append(seg)
                continue
            close_run()
        if int(seg.flags) & ~int(PSH) == int(ACK) and seg.payload:
            run.append(seg)
        else:
            out.append(seg)
    close_run()
    return out


def _thins(prev: TcpRepr, seg: TcpRepr) -> bool:
    """``seg`` supersedes ``prev``: both pure ACKs (no data, no other flag, no SACK blocks) at the
    same sequence number, ``seg`` acknowledging more.  Equal ACKs are never merged: they are
    duplicate ACKs, which loss detection counts."""
    return (
        int(prev.flags) == int(ACK)
        and int(seg.flags) == int(ACK)
        and not prev.payload
        and not seg.payload
        and seg.seq == prev.seq
        and seq_gt(seg.ack, prev.ack)
        and not prev.options.sack_blocks
        and not seg.options.sack_blocks
    )


def _input_at(conn: TcpConnection, now: float, seg: TcpRepr) -> None:
    conn.input(seg, now)
