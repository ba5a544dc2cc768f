"""MRT (RFC 6396) decoding: the raw update files against bgpdump's own text rendering of the same
data, the BGP4MP_ET session dump against its stated counts, and cut or corrupted records."""

from __future__ import annotations

import gzip
import io
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netfast.route import mrt
from netfast.route.loaders import LoadStats, RouteFileError, iter_updates, load_table
from netfast.route.rib import format_prefix, prefix_mask

UPDATES = Path("bgp-updates")
PAIRS = ["ris-rrc01-updates.20070211.0141", "ris-rrc21-updates.20160811.1600"]


def _headers(data: bytes) -> list[tuple[int, int, int]]:
    """``(offset, type, length)`` of every record, walked with struct alone."""
    out, pos = [], 0
    while pos < len(data):
        _, rtype, _, length = struct.unpack_from(">IHHI", data, pos)
        out.append((pos, rtype, length))
        pos += 12 + length
    assert pos == len(data)
    return out


@pytest.mark.parametrize("base", PAIRS)
def test_mrt_matches_bgpdump_text(shared_data: Path, base: str) -> None:
    raw = shared_data / UPDATES / f"{base}.mrt.gz"
    text = shared_data / UPDATES / f"{base}.bgpdump-m.txt.gz"
    stats = LoadStats("")
    from_mrt = {
        v: list(iter_updates(raw, value=v, stats=stats)) for v in ("origin", "nexthop", "aspath")
    }
    from_text = {v: list(iter_updates(text, value=v)) for v in ("origin", "nexthop", "aspath")}
    multicast = stats.ignored["ipv4_multicast"] // 3
    for v in from_mrt:
        # bgpdump prints IPv4 multicast (SAFI 2) routes like unicast ones; netfast counts them
        # apart, so the MRT events are the text's events minus exactly that many.
        a, b = from_mrt[v], from_text[v]
        assert len(b) - len(a) == multicast
        j = 0
        for u in b:
            if j < len(a) and a[j] == u:
                j += 1
        assert j == len(a), f"value={v}: event {j} of the MRT stream is not in the text"
    # the text's own numbers: every line is an IPv4 or IPv6 A/W event or a STATE change
    lines = gzip.decompress(text.read_bytes()).decode().splitlines()
    events = [ln.split("|") for ln in lines if ln.split("|")[2] in "AW"]
    v4 = [e for e in events if ":" not in e[5]]
    assert len(from_text["origin"]) == len(v4)
    assert stats.ipv6_skipped // 3 == len(events) - len(v4)
    sample = from_mrt["aspath"][100]
    assert sample.value.split()[-1].strip("{}") in {u.value for u in from_mrt["origin"]}


def test_rrc21_stated_counts(shared_data: Path) -> None:
    stats = LoadStats("")
    ups = list(iter_updates(shared_data / UPDATES / f"{PAIRS[1]}.mrt.gz", stats=stats))
    assert stats.records == 17_406
    assert stats.ignored["state_change"] == 22
    # SOURCES.md: 39,256 announcements and 1,956 withdrawals, 34,326 of them IPv4
    assert len(ups) == 34_326 and len(ups) + stats.ipv6_skipped == 39_256 + 1_956
    assert {u.timestamp for u in ups} <= set(range(1470931200, 1470931500))


@pytest.mark.slow
def test_as3856_bgp4mp_et_session(shared_data: Path) -> None:
    path = shared_data / UPDATES / "as3856-session-fulltable-20151023.bgp4mp_et.mrt.gz"
    stats = LoadStats("")
    kinds = {"A": 0, "W": 0}
    first = last = None
    hops = set()
    for u in iter_updates(path, value="nexthop", stats=stats):
        kinds[u.kind] += 1
        first = first if first is not None else u.timestamp
        last = u.timestamp
        hops.add(u.value)
    assert kinds == {"A": 577_737, "W": 3}
    assert stats.records == 89_686
    assert len(hops - {""}) == 3_771
    # microsecond timestamps inside the stated span 02:01:18.51 .. 02:01:55.57 UTC
    assert first is not None and last is not None
    assert 1445565678.51 <= first <= last <= 1445565715.58
    assert first != int(first)
    # replayed, minus the default route and bogons, it is the shared next-hop FIB
    res = load_table(path, value="nexthop")
    assert len(res.rib) == 577_703
    fib = load_table(shared_data / "routes" / "ipv4-fib-20151023-as3856-nexthop.txt.gz").rib
    for n, p, rid in fib.items():
        got = res.rib.get(n, p)
        assert got is not None and res.rib.value_of(got) == fib.value_of(rid)


# -- cut and corrupted streams -----------------------------------------------------------------


@pytest.fixture(scope="module")
def rrc21(shared_data: Path) -> bytes:
    return gzip.decompress((shared_data / UPDATES / f"{PAIRS[1]}.mrt.gz").read_bytes())


@pytest.mark.parametrize("record", [0, 1, 500, 17_405])
@pytest.mark.parametrize("into", [0, 5, 11, 12, 40])
def test_truncated_stream(rrc21: bytes, tmp_path: Path, record: int, into: int) -> None:
    offset, _, length = _headers(rrc21)[record]
    cut = offset + min(into, 12 + length - 1)
    path = tmp_path / "cut.mrt"
    path.write_bytes(rrc21[:cut])
    if cut == offset:  # a cut on a record boundary is a shorter, valid stream
        assert len(list(iter_updates(path, fmt="mrt"))) == sum(
            1 for _ in iter_updates_bytes(rrc21[:offset], tmp_path)
        )
        return
    if cut - offset < 12:
        expected = f"{path}: offset {offset}: MRT header needs 12 bytes, {cut - offset} left"
    else:
        expected = (
            f"{path}: offset {offset + 8}: MRT record length {length} exceeds the data "
            f"({cut - offset - 12} bytes left)"
        )
    with pytest.raises(RouteFileError) as info:
        list(iter_updates(path, fmt="mrt"))
    assert str(info.value) == expected
    assert info.value.offset == (offset if cut - offset < 12 else offset + 8)
    stats = LoadStats("")
    before = list(iter_updates(path, skip_bad=True, stats=stats, fmt="mrt"))
    whole = list(iter_updates_bytes(rrc21[:offset], tmp_path))
    assert before == whole
    assert stats.skipped == {"truncated": 1}


def iter_updates_bytes(data: bytes, tmp_path: Path) -> list[object]:
    path = tmp_path / "whole.mrt"
    path.write_bytes(data)
    return list(iter_updates(path, fmt="mrt"))


def test_bad_record_type_is_reported_or_skipped(rrc21: bytes, tmp_path: Path) -> None:
    headers = _headers(rrc21)
    # the first record from #300 on that carries IPv4 NLRI, with its number of prefix events
    for rec in list(mrt.iter_records(rrc21))[300:]:
        msg = mrt.parse_bgp4mp(rec)
        upd = getattr(msg, "update", None)
        if upd is not None and upd.nlri:
            offset, events = rec.offset, len(upd.nlri) + len(upd.withdrawn)
            break
    data = bytearray(rrc21)
    data[offset + 4 : offset + 6] = (99).to_bytes(2, "big")
    path = tmp_path / "bad.mrt"
    path.write_bytes(bytes(data))
    with pytest.raises(RouteFileError, match=f"offset {offset + 4}: unknown MRT type 99"):
        list(iter_updates(path))
    stats = LoadStats("")
    got = list(iter_updates(path, skip_bad=True, stats=stats))
    full = list(iter_updates_bytes(rrc21, tmp_path))
    assert stats.skipped == {"bad_record": 1} and stats.records == len(headers)
    assert len(got) == len(full) - events  # only that record's events are gone


def _update_record(
    nlri: list[tuple[int, int]],
    withdrawn: list[tuple[int, int]] = (),  # type: ignore[assignment]
    *,
    as_path: list[tuple[int, list[int]]] | None = None,
    next_hop: int = 0xC6120001,
    ts: int = 1_000_000,
    usec: int | None = None,
    asn_size: int = 4,
) -> bytes:
    msg = mrt.encode_update(
        list(withdrawn),
        nlri,
        as_path=as_path or [(2, [64500])],
        next_hop=next_hop,
        asn_size=asn_size,
    )
    body = mrt.encode_bgp4mp_message(msg, peer_as=64500, peer_ip=0xC6120002)
    if asn_size == 2:  # BGP4MP_MESSAGE: 2-byte peer and local AS
        body = body[2:4] + body[6:]
    mtype = mrt.MrtType.BGP4MP_ET if usec is not None else mrt.MrtType.BGP4MP
    subtype = mrt.Bgp4mp.MESSAGE_AS4 if asn_size == 4 else mrt.Bgp4mp.MESSAGE
    return mrt.encode_record(mtype, subtype, body, ts, usec)


def test_attribute_length_beyond_the_message(tmp_path: Path) -> None:
    good = _update_record([(0x0A000000, 8)])
    rec = bytearray(_update_record([(0x0B000000, 8)]))
    # common header 12, BGP4MP_AS4 header 20, BGP header 19, withdrawn length 2 (= 0)
    field = 12 + 20 + 19 + 2
    left = len(rec) - field - 2
    rec[field : field + 2] = (300).to_bytes(2, "big")
    path = tmp_path / "updates.mrt"
    path.write_bytes(good + bytes(rec) + good)
    with pytest.raises(RouteFileError) as info:
        list(iter_updates(path))
    assert str(info.value) == (
        f"{path}: offset {len(good) + field}: BGP UPDATE attribute length 300 exceeds the message "
        f"({left} bytes left)"
    )
    stats = LoadStats("")
    ups = list(iter_updates(path, skip_bad=True, stats=stats))
    assert [u.prefix for u in ups] == ["10.0.0.0/8", "10.0.0.0/8"]
    assert stats.skipped == {"bad_record": 1}
    assert stats.first_errors == [str(info.value)]


def test_single_attribute_length_and_bad_prefix(tmp_path: Path) -> None:
    rec = bytearray(_update_record([(0x0A000000, 8)]))
    first_attr = 12 + 20 + 19 + 2 + 2  # ORIGIN: flags, type, length
    rec[first_attr + 2] = 200
    path = tmp_path / "a.mrt"
    path.write_bytes(bytes(rec))
    with pytest.raises(
        RouteFileError, match=f"offset {first_attr}: BGP UPDATE attribute 1 length 200"
    ):
        list(iter_updates(path))
    rec = bytearray(_update_record([(0x0A000000, 8)]))
    rec[-2] = 33  # the NLRI's prefix length byte
    path.write_bytes(bytes(rec))
    with pytest.raises(
        RouteFileError, match=f"offset {len(rec) - 2}: NLRI prefix length 33 exceeds 32"
    ):
        list(iter_updates(path))


def test_et_microseconds_and_state_changes(tmp_path: Path) -> None:
    state = mrt.encode_record(
        mrt.MrtType.BGP4MP_ET,
        mrt.Bgp4mp.STATE_CHANGE_AS4,
        struct.pack(">IIHH", 64500, 64501, 0, 1) + bytes(8) + struct.pack(">HH", 1, 6),
        1_000_000,
        250_000,
    )
    path = tmp_path / "et.mrt"
    path.write_bytes(state + _update_record([(0x0A000000, 8)], ts=1_000_001, usec=500_000))
    stats = LoadStats("")
    (u,) = iter_updates(path, stats=stats)
    assert u.timestamp == 1_000_001.5 and stats.ignored == {"state_change": 1}


def test_as4_path_merge_and_as_set_origin(tmp_path: Path) -> None:
    # a 2-byte session: AS_TRANS in AS_PATH, the real ASNs in AS4_PATH (RFC 6793 4.2.3)
    msg = bytearray(
        mrt.encode_update([], [(0x0A000000, 8)], as_path=[(2, [3356, 23456, 23456])], asn_size=2)
    )
    as4 = mrt.encode_attribute(17, mrt.encode_as_path([(2, [196608, 4200000000])]), 0xC0)
    attr_len = int.from_bytes(msg[21:23], "big") + len(as4)
    msg[21:23] = attr_len.to_bytes(2, "big")
    msg = msg[: 23 + attr_len - len(as4)] + as4 + msg[23 + attr_len - len(as4) :]
    msg[16:18] = len(msg).to_bytes(2, "big")
    body = struct.pack(">HHHH", 3356, 0, 0, 1) + bytes(8) + bytes(msg)
    set_rec = _update_record([(0x0B000000, 8)], as_path=[(2, [1, 2]), (1, [30, 10])])
    path = tmp_path / "as4.mrt"
    path.write_bytes(mrt.encode_record(16, 1, body) + set_rec)
    origins = [u.value for u in iter_updates(path)]
    paths = [u.value for u in iter_updates(path, value="aspath")]
    assert origins == ["4200000000", "30,10"]
    assert paths == ["3356 196608 4200000000", "1 2 {30,10}"]


def test_table_dump_v2(tmp_path: Path) -> None:
    # built with struct from RFC 6396 4.3.1 / 4.3.2, independently of the encoder
    peers = struct.pack(">IH", 0x01020304, 0) + struct.pack(">H", 2)
    peers += struct.pack(">BI4sH", 0, 1, bytes([192, 0, 2, 1]), 64500)  # 2-byte AS peer
    peers += struct.pack(">BI16sI", 3, 2, bytes(15) + b"\x01", 4200000000)  # IPv6, AS4
    path_attr = bytes([0x40, 2, 10, 2, 2]) + struct.pack(">II", 64500, 13335)
    nh = bytes([0x40, 3, 4, 192, 0, 2, 1])
    entry = struct.pack(">HIH", 0, 0, len(path_attr + nh)) + path_attr + nh
    rib4 = struct.pack(">I", 0) + bytes([24, 1, 1, 1]) + struct.pack(">H", 1) + entry
    rib6 = struct.pack(">I", 1) + bytes([32, 0x20, 0x01, 0x0D, 0xB8]) + struct.pack(">H", 0)
    data = (
        mrt.encode_record(13, 1, peers, 7)
        + mrt.encode_record(13, 2, rib4, 7)
        + mrt.encode_record(13, 4, rib6, 7)
    )
    path = tmp_path / "bview.mrt"
    path.write_bytes(gzip.compress(data))
    res = load_table(path)
    assert [(format_prefix(n, p), res.rib.value_of(r)) for n, p, r in res.rib.items()] == [
        ("1.1.1.0/24", "13335")
    ]
    assert res.stats.ipv6_skipped == 1 and res.stats.records == 3
    (u,) = iter_updates(path, value="nexthop")
    assert (u.peer, u.peer_as, u.value) == ("192.0.2.1", 64500, "192.0.2.1")
    # a RIB entry naming a peer the index does not have
    bad = rib4[: -len(entry)] + struct.pack(">H", 5) + entry[2:]
    path.write_bytes(mrt.encode_record(13, 1, peers) + mrt.encode_record(13, 2, bad))
    with pytest.raises(RouteFileError, match="peer index 5 beyond the 2 peers"):
        load_table(path)


def test_stream_and_buffer_agree(shared_data: Path, rrc21: bytes) -> None:
    from_buffer = [(r.offset, r.type, r.subtype, bytes(r.body)) for r in mrt.iter_records(rrc21)]
    from_stream = [
        (r.offset, r.type, r.subtype, bytes(r.body)) for r in mrt.iter_records(io.BytesIO(rrc21))
    ]
    assert from_buffer == from_stream
    assert [o for o, _, _, _ in from_buffer] == [o for o, _, _ in _headers(rrc21)]
    first = 12 + _headers(rrc21)[0][2]
    with pytest.raises(mrt.MrtError, match=f"offset {first}: MRT header needs 12 bytes, 3 left"):
        list(mrt.iter_records(io.BytesIO(rrc21[: first + 3])))
    with pytest.raises(mrt.MrtError, match="offset 8: MRT record length 138 exceeds the data"):
        list(mrt.iter_records(io.BytesIO(rrc21[:15])))


# -- encoder round trip ------------------------------------------------------------------------

pfx = st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32)).map(
    lambda t: (t[0] & prefix_mask(t[1]), t[1])
)
paths = st.lists(
    st.tuples(st.sampled_from([1, 2]), st.lists(st.integers(1, 65535), min_size=1, max_size=5)),
    min_size=1,
    max_size=4,
)


@given(
    st.lists(
        st.tuples(
            st.lists(pfx, max_size=5), st.lists(pfx, max_size=5), paths, st.sampled_from([2, 4])
        ),
        max_size=12,
    )
)
def test_random_updates_round_trip(
    tmp_path_factory: pytest.TempPathFactory,
    messages: list[
        tuple[list[tuple[int, int]], list[tuple[int, int]], list[tuple[int, list[int]]], int]
    ],
) -> None:
    data = b""
    expected = []
    for i, (nlri, withdrawn, as_path, asn_size) in enumerate(messages):
        data += _update_record(nlri, withdrawn, as_path=as_path, ts=i, asn_size=asn_size)
        expected += [("W", i, n, p, "") for n, p in withdrawn]
        expected += [("A", i, n, p, mrt.format_as_path(as_path)) for n, p in nlri]
    path = tmp_path_factory.mktemp("m") / "r.mrt"
    path.write_bytes(data)
    got = [
        (u.kind, u.timestamp, u.net, u.plen, u.value) for u in iter_updates(path, value="aspath")
    ]
    assert got == expected
