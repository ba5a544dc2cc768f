"""Segmentation and receive offloads in software, compiled: GSO cuts a TCP super-frame into
wire-sized frames, GRO finds the runs of a received batch that a TCP may take as one segment.

The paper ("Transport Layer") asks what TCP segmentation offload is worth: the stack pays its
per-packet costs once per 64 KiB instead of once per 1460 bytes.  A device that cannot segment
does not take that away -- the cut can be made in software as late as possible, right before the
driver (Linux's GSO), and the receive side can merge the segments of a batch back into one before
the TCP sees them (Linux's GRO).  Both are loops over bytes: checksums, header copies and field
updates.  Here they are numba kernels over a batch, so the Python work that remains is per
super-frame and per run, not per wire frame.

Contract
--------
:func:`gso_segment` takes an Ethernet/IPv4/TCP super-frame and an MSS and returns the wire
frames, each with its own IPv4 total length, identification (incremented per segment) and header
checksum, its sequence number, FIN/PSH on the last segment only, CWR on the first only, and a full
TCP checksum.

:func:`gro_scan` takes a batch of received frames concatenated (with their offsets) and the
receiver's MAC address and unicast addresses.  It classifies every frame: *fast* when it is a
frame the host stack would deliver to TCP unchanged by any check -- for us by MAC, IPv4 with no
options, no fragment, valid header checksum, no martian source or destination, destination one
of ours, TCP with a valid checksum, data offset >= 5, options none or exactly NOP, NOP,
timestamps, flags ACK or ACK|PSH, at least one byte of payload, no zero port; every other frame
is *slow* and must take the ordinary path.  Consecutive fast frames of one connection form a run
under the rules of :func:`netfast.tcp.layer.coalesce` (the next begins where the previous ends;
same acknowledgment, window and option bytes; the previous carries no PSH), and each run's
payload is copied contiguous into one output buffer.  The runs never merge what ``coalesce``
would keep apart, so the TCP sees the same segments either way.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from netfast.ip.facts import nb_ipv4_header_sum, nb_martian_src
from netfast.link.base import ETHER_HEADER_LEN, VLAN_TAG_LEN
from netfast.wire.checksum import IPPROTO_TCP, words_fold, words_sum
from netfast.wire.tcp import TcpFlags

# Plain ints for the kernels.
_TCP_FLAG_FIN = int(TcpFlags.FIN)
_TCP_FLAG_PSH = int(TcpFlags.PSH)
_TCP_FLAG_ACK = int(TcpFlags.ACK)
_TCP_FLAG_CWR = int(TcpFlags.CWR)

#: Columns of :func:`gro_scan`'s run table: frame indexes (stop exclusive), 1 for a run of fast
#: frames (0: one slow frame), the run's payload in the payload buffer, and for a fast run the
#: merged segment's fields -- addresses, ports, sequence number (the first frame's), ack, window,
#: flags (the last frame's), 1 when it carries timestamps, TSval and TSecr.
(
    RUN_FIRST,
    RUN_STOP,
    RUN_FAST,
    RUN_PAY_START,
    RUN_PAY_STOP,
    RUN_SRC,
    RUN_DST,
    RUN_SPORT,
    RUN_DPORT,
    RUN_SEQ,
    RUN_ACK,
    RUN_WINDOW,
    RUN_FLAGS,
    RUN_TS,
    RUN_TSVAL,
    RUN_TSECR,
) = range(16)
RUN_COLUMNS = 16


def ipv4_l4(frame: bytes | bytearray | memoryview) -> tuple[int, int, int, int]:
    """Offsets of an Ethernet/IPv4 frame: (IP header start, IP header length, IP protocol,
    IP total length).  ValueError when the frame is not a whole, unfragmented IPv4 packet."""
    l3 = ETHER_HEADER_LEN
    if len(frame) >= l3 + VLAN_TAG_LEN and frame[12:14] in (b"\x81\x00", b"\x88\xa8"):
        l3 += VLAN_TAG_LEN
    if len(frame) < l3 + 20 or frame[l3 - 2 : l3] != b"\x08\x00":
        raise ValueError("not an Ethernet frame carrying IPv4")
    ver_ihl = frame[l3]
    ihl = (ver_ihl & 0x0F) * 4
    total = int.from_bytes(frame[l3 + 2 : l3 + 4], "big")
    if ver_ihl >> 4 != 4 or ihl < 20 or total < ihl or l3 + total > len(frame):
        raise ValueError(f"ipv4: version/ihl 0x{ver_ihl:02x}, total length {total} do not fit")
    if int.from_bytes(frame[l3 + 6 : l3 + 8], "big") & 0x3FFF:
        raise ValueError("ipv4: a fragment cannot be segmented or checksummed")
    return l3, ihl, frame[l3 + 9], total


# --- kernels --------------------------------------------------------------------------------


@numba.njit(nogil=True, cache=True, inline="always")
def _u16(a: Any, i: int) -> Any:  # pragma: no cover - compiled
    return (np.int64(a[i]) << 8) | np.int64(a[i + 1])


@numba.njit(nogil=True, cache=True, inline="always")
def _u32(a: Any, i: int) -> Any:  # pragma: no cover - compiled
    return (
        (np.int64(a[i]) << 24)
        | (np.int64(a[i + 1]) << 16)
        | (np.int64(a[i + 2]) << 8)
        | np.int64(a[i + 3])
    )


@numba.njit(nogil=True, cache=True)
def _gso_kernel(
    frame: Any, l3: int, ihl: int, thl: int, end: int, mss: int, out: Any, offs: Any
) -> int:  # pragma: no cover - compiled
    l4 = l3 + ihl
    data = l4 + thl
    nseg = max(1, (end - data + mss - 1) // mss)
    ident = _u16(frame, l3 + 4)
    seq = _u32(frame, l4 + 4)
    flags = np.int64(frame[l4 + 13])
    addr_sum = words_sum(frame, l3 + 12, l3 + 20)
    pos = 0
    for i in range(nseg):
        start = data + i * mss
        stop = min(start + mss, end)
        chunk = stop - start
        size = data + chunk
        offs[i] = pos
        out[pos : pos + data] = frame[:data]
        out[pos + data : pos + size] = frame[start:stop]
        total = ihl + thl + chunk
        out[pos + l3 + 2] = total >> 8
        out[pos + l3 + 3] = total & 0xFF
        this_id = (ident + i) & 0xFFFF
        out[pos + l3 + 4] = this_id >> 8
        out[pos + l3 + 5] = this_id & 0xFF
        out[pos + l3 + 10] = 0
        out[pos + l3 + 11] = 0
        ip_sum = ~words_fold(words_sum(out, pos + l3, pos + l4)) & 0xFFFF
        out[pos + l3 + 10] = ip_sum >> 8
        out[pos + l3 + 11] = ip_sum & 0xFF
        this_seq = (seq + i * mss) & 0xFFFFFFFF
        out[pos + l4 + 4] = (this_seq >> 24) & 0xFF
        out[pos + l4 + 5] = (this_seq >> 16) & 0xFF
        out[pos + l4 + 6] = (this_seq >> 8) & 0xFF
        out[pos + l4 + 7] = this_seq & 0xFF
        f = flags
        if i != nseg - 1:
            f &= ~(_TCP_FLAG_FIN | _TCP_FLAG_PSH)
        if i:
            f &= ~_TCP_FLAG_CWR
        out[pos + l4 + 13] = f
        out[pos + l4 + 16] = 0
        out[pos + l4 + 17] = 0
        tcp_len = thl + chunk
        csum = addr_sum + np.uint64(IPPROTO_TCP) + np.uint64(tcp_len)
        csum += words_sum(out, pos + l4, pos + size)
        value = ~words_fold(csum) & 0xFFFF
        out[pos + l4 + 16] = value >> 8
        out[pos + l4 + 17] = value & 0xFF
        pos += size
    offs[nseg] = pos
    return nseg


@numba.njit(nogil=True, cache=True)
def _gro_kernel(
    buf: Any, offs: Any, mac: Any, addrs: Any, runs: Any, pay: Any
) -> tuple[int, int]:  # pragma: no cover - compiled
    n = offs.shape[0] - 1
    # Per frame: fast?, then the fields a run compares.
    fast = np.zeros(n, np.bool_)
    key = np.zeros((n, 8), np.int64)  # src, dst, sport, dport, seq, ack, window, flags
    popt = np.zeros((n, 3), np.int64)  # options start, payload start, payload stop
    for i in range(n):
        f0 = offs[i]
        flen = offs[i + 1] - f0
        if flen < ETHER_HEADER_LEN + 40:
            continue
        ok = True
        for k in range(6):
            if buf[f0 + k] != mac[k]:
                ok = False
                break
        if not ok or buf[f0 + 12] != 0x08 or buf[f0 + 13] != 0x00:
            continue
        l3 = f0 + ETHER_HEADER_LEN
        if buf[l3] != 0x45 or buf[l3 + 9] != IPPROTO_TCP:
            continue
        total = _u16(buf, l3 + 2)
        if total < 40 or total > flen - ETHER_HEADER_LEN:
            continue
        if _u16(buf, l3 + 6) & 0x3FFF:  # MF or an offset: a fragment
            continue
        if nb_ipv4_header_sum(buf, l3) != 0xFFFF:
            continue
        src = _u32(buf, l3 + 12)
        dst = _u32(buf, l3 + 16)
        if nb_martian_src(src):  # (a martian destination is never one of ours)
            continue
        mine = False
        for a in addrs:
            if a == dst:
                mine = True
                break
        if not mine:
            continue
        l4 = l3 + 20
        end = l3 + total
        thl = (np.int64(buf[l4 + 12]) >> 4) * 4
        if thl < 20 or l4 + thl > end:
            continue
        if thl == 32:
            if buf[l4 + 20] != 1 or buf[l4 + 21] != 1 or buf[l4 + 22] != 8:
                continue
            if buf[l4 + 23] != 10:
                continue
        elif thl != 20:
            continue
        flags = _u16(buf, l4 + 12) & 0x1FF
        if flags & ~_TCP_FLAG_PSH != _TCP_FLAG_ACK:
            continue
        if end - (l4 + thl) < 1:
            continue
        sport = _u16(buf, l4)
        dport = _u16(buf, l4 + 2)
        if sport == 0 or dport == 0:
            continue
        csum = words_sum(buf, l3 + 12, l3 + 20) + np.uint64(IPPROTO_TCP) + np.uint64(total - 20)
        csum += words_sum(buf, l4, end)
        if words_fold(csum) != 0xFFFF:
            continue
        fast[i] = True
        key[i, 0] = src
        key[i, 1] = dst
        key[i, 2] = sport
        key[i, 3] = dport
        key[i, 4] = _u32(buf, l4 + 4)
        key[i, 5] = _u32(buf, l4 + 8)
        key[i, 6] = _u16(buf, l4 + 14)
        key[i, 7] = flags
        popt[i, 0] = l4 + 20
        popt[i, 1] = l4 + thl
        popt[i, 2] = end
    nruns = 0
    wpos = 0
    i = 0
    while i < n:
        if not fast[i]:
            runs[nruns, RUN_FIRST] = i
            runs[nruns, RUN_STOP] = i + 1
            runs[nruns, RUN_FAST] = 0
            nruns += 1
            i += 1
            continue
        j = i + 1
        while j < n and fast[j]:
            p = j - 1
            if key[p, 7] != _TCP_FLAG_ACK:  # PSH (or anything but ACK) ends a run
                break
            same = True
            for k in range(4):
                if key[j, k] != key[p, k]:
                    same = False
                    break
            if not same or key[j, 5] != key[p, 5] or key[j, 6] != key[p, 6]:
                break
            if key[j, 4] != (key[p, 4] + popt[p, 2] - popt[p, 1]) & 0xFFFFFFFF:
                break
            olen = popt[j, 1] - popt[j, 0]
            if olen != popt[p, 1] - popt[p, 0]:
                break
            for k in range(olen):
                if buf[popt[j, 0] + k] != buf[popt[p, 0] + k]:
                    same = False
                    break
            if not same:
                break
            j += 1
        runs[nruns, RUN_FIRST] = i
        runs[nruns, RUN_STOP] = j
        runs[nruns, RUN_FAST] = 1
        runs[nruns, RUN_PAY_START] = wpos
        for m in range(i, j):
            a, b = popt[m, 1], popt[m, 2]
            pay[wpos : wpos + b - a] = buf[a:b]
            wpos += b - a
        runs[nruns, RUN_PAY_STOP] = wpos
        for k in range(8):
            runs[nruns, RUN_SRC + k] = key[i, k]
        runs[nruns, RUN_FLAGS] = key[j - 1, 7]
        o = popt[i, 0]
        if popt[i, 1] > o:
            runs[nruns, RUN_TS] = 1
            runs[nruns, RUN_TSVAL] = _u32(buf, o + 4)
            runs[nruns, RUN_TSECR] = _u32(buf, o + 8)
        nruns += 1
        i = j
    return nruns, wpos


# --- Python entry points ------------------------------------------------------------------------


def gso_segment(frame: bytes | bytearray | memoryview, mss: int) -> list[bytes]:
    """Cut a TCP/IPv4 super-frame into segments of at most ``mss`` payload bytes, as a NIC's TSO
    (or Linux's software GSO) does.

    Every segment gets the super-frame's Ethernet, IPv4 and TCP headers with: IPv4 total length
    and header checksum recomputed and the identification incremented per segment; the TCP
    sequence number advanced by the payload before it; FIN and PSH kept on the last segment only
    and CWR on the first only; the TCP checksum computed in full (whatever the super-frame's
    field held, partial or not).  Ethernet padding behind the IP packet is dropped.  A
    super-frame whose payload fits in one segment comes back as one segment.

    Raises
    ------
    ValueError
        ``mss`` < 1, or ``frame`` is not an unfragmented TCP/IPv4 packet in Ethernet.
    """
    if mss < 1:
        raise ValueError(f"mss = {mss}: must be positive")
    l3, ihl, protocol, total = ipv4_l4(frame)
    if protocol != IPPROTO_TCP:
        raise ValueError(f"ipv4.protocol = {protocol}: only TCP can be segmented")
    l4 = l3 + ihl
    thl = (frame[l4 + 12] >> 4) * 4 if len(frame) > l4 + 12 else 0
    if thl < 20 or ihl + thl > total:
        raise ValueError(f"tcp.data_offset = {thl // 4}: does not fit the IPv4 packet")
    end = l3 + total
    data = l4 + thl
    nseg = max(1, -(-(end - data) // mss))
    src = np.frombuffer(frame, np.uint8)
    out = np.empty(nseg * data + (end - data), np.uint8)
    offs = np.empty(nseg + 1, np.int64)
    _gso_kernel(src, l3, ihl, thl, end, mss, out, offs)
    whole = out.tobytes()
    bounds = offs.tolist()
    return [whole[bounds[i] : bounds[i + 1]] for i in range(nseg)]


def gro_scan(
    frames: list[bytes], mac: bytes, addrs: npt.NDArray[np.int64]
) -> tuple[list[list[int]], bytes]:
    """Classify a batch of received frames and merge the runs (see the module docstring).

    Parameters
    ----------
    frames
        The batch, in the order received.
    mac
        The receiving interface's MAC address (a broadcast frame is slow).
    addrs
        The receiver's unicast IPv4 addresses.

    Returns
    -------
    (list, bytes)
        The run table, one row per run in frame order with the ``RUN_*`` columns, and the fast
        runs' payloads back to back.
    """
    n = len(frames)
    joined = b"".join(frames)
    offs = np.zeros(n + 1, np.int64)
    np.cumsum(np.fromiter(map(len, frames), np.int64, n), out=offs[1:])
    runs = np.zeros((n, RUN_COLUMNS), np.int64)
    pay = np.empty(len(joined), np.uint8)
    buf = np.frombuffer(joined, np.uint8)
    nruns, used = _gro_kernel(buf, offs, np.frombuffer(mac, np.uint8), addrs, runs, pay)
    return runs[:nruns].tolist(), pay[:used].tobytes()
