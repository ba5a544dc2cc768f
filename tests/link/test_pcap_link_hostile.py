"""Timestamps a classic pcap cannot hold (issue 17): the writer link and ``netfast forward``
refuse them with one clear error, write nothing of the refused record and leave existing files
as they were."""

from __future__ import annotations

import math
import struct
from importlib import resources
from pathlib import Path

import pytest

from netfast.cli import main
from netfast.cli.pcap import format_time
from netfast.link.memory import MemoryLink
from netfast.link.pcap import PcapWriterLink, read_capture
from netfast.wire.capture import PcapRecord, PcapTimestampError

SAMPLE = Path(str(resources.files("netfast.data") / "sample-http.pcap"))
#: The demo router's ports without its 1M-prefix table: a default route forwards everything.
ROUTER = """
[[interface]]
name = "eth0"
mac = "fe:ff:20:00:01:00"
addresses = ["145.254.160.1/24"]

[[interface]]
name = "eth1"
mac = "02:00:00:00:01:01"
addresses = ["198.18.1.1/24"]

[routes]
"0.0.0.0/0" = "via 198.18.1.2 dev eth1"

[neighbors]
"145.254.160.237" = "00:00:01:00:00:00"
"198.18.1.2" = "02:00:00:00:01:02"
"""
FRAME = bytes(range(60))


def _block(block_type: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    length = len(body) + 12
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)


def _pcapng(records: list[PcapRecord], tsoffset: int) -> bytes:
    """A pcapng (microsecond units, ``if_tsoffset`` seconds) whose records read back with
    their times moved by ``tsoffset`` seconds."""
    out = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += _block(1, struct.pack("<HHIHHqHH", 1, 0, 0, 14, 8, tsoffset, 0, 0))
    for r in records:
        units = r.timestamp_ns // 1000
        head = struct.pack("<IIIII", 0, units >> 32, units & 0xFFFFFFFF, len(r.data), r.orig_len)
        out += _block(6, head + r.data)
    return out


@pytest.mark.parametrize("now", [-1, 2**32 * 10**9, 2**63, math.nan, float(10**18)], ids=repr)
def test_writer_link_refuses_and_keeps_the_old_file(tmp_path: Path, now: object) -> None:
    path = tmp_path / "capture.pcap"
    path.write_bytes(b"the user's old capture")
    clock = iter([10**9, now])
    a, b = MemoryLink.pair()
    link = PcapWriterLink(path, a, clock=lambda: next(clock))  # type: ignore[arg-type, return-value]
    with pytest.raises(PcapTimestampError) as info, link:
        assert link.send([FRAME]) == 1
        link.send([FRAME, FRAME])
    message = str(info.value)
    assert message.startswith(f"{path}: offset {24 + 16 + 60}: record timestamp ")
    assert "classic pcap" in message or "not an integer" in message
    assert b.recv_batch() == [FRAME]  # the refused batch was not passed on either
    assert path.read_bytes() == b"the user's old capture"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["capture.pcap"]  # no temp file


def test_writer_link_at_the_last_representable_second(tmp_path: Path) -> None:
    path = tmp_path / "late.pcap"
    with PcapWriterLink(path, clock=lambda: 2**32 * 10**9 - 1) as link:
        link.send([FRAME])
    assert [r.timestamp_ns for r in read_capture(path)] == [2**32 * 10**9 - 1000]


@pytest.mark.parametrize(
    ("tsoffset", "years"),
    [(6 * 10**9, "2194-"), (-2 * 10**9, "1940-")],
)
def test_forward_refuses_times_a_pcap_cannot_hold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tsoffset: int, years: str
) -> None:
    """The input is a valid pcapng (its times are in the reader's range); the classic pcap
    outputs cannot hold them: exit 2, one line, and the out-dir as it was."""
    records = list(read_capture(SAMPLE))
    source = tmp_path / "shifted.pcapng"
    source.write_bytes(_pcapng(records, tsoffset))
    first = next(iter(read_capture(source)))
    assert format_time(first.timestamp_ns).startswith(years)  # the intended era
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "eth1.pcap").write_bytes(b"kept")
    config = tmp_path / "router.toml"
    config.write_text(ROUTER)
    argv = ["forward", "--config", str(config), "--in", str(source)]
    status = main([*argv, "--out-dir", str(out_dir), "--force"])
    _, err = capsys.readouterr()
    assert status == 2
    assert err.startswith(f"netfast: error: {out_dir}/eth")
    assert "does not fit a classic pcap record" in err and err.count("\n") == 1
    assert sorted(p.name for p in out_dir.iterdir()) == ["eth1.pcap"]
    assert (out_dir / "eth1.pcap").read_bytes() == b"kept"
