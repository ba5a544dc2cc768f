"""`netfast pcap show`: one line per packet, the stats table, and clear errors for bad files."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from netfast.cli import main
from netfast.link.pcap import read_capture
from netfast.wire.pcap import PcapWriter


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_one_line_per_packet(capsys: pytest.CaptureFixture[str], shared_data: Path) -> None:
    path = shared_data / "pcap" / "http-google-get.pcap"
    status, out, err = run(capsys, "pcap", "show", str(path))
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert len(lines) == len(list(read_capture(path))) == 12
    # The SYN of the capture, as tcpdump shows it.
    assert "172.16.16.128.1606 > 74.125.95.104.80: Flags [S], seq 2082691767" in lines[0]
    assert "options [mss 1460,nop,wscale 2,nop,nop,sackOK]" in lines[0]
    assert lines[0].startswith("2010-02-09 ")
    assert all("[cksum ok]" in line for line in lines)


def test_bad_checksums_are_shown(capsys: pytest.CaptureFixture[str], shared_data: Path) -> None:
    path = shared_data / "pcap" / "http-espn-pageload.pcap"
    status, out, _ = run(capsys, "pcap", "show", str(path))
    assert status == 0
    assert out.count("[bad tcp cksum]") == 63
    assert out.count("[bad udp cksum]") == 14


def test_stats_table(capsys: pytest.CaptureFixture[str], shared_data: Path) -> None:
    path = shared_data / "pcap" / "http-espn-pageload.pcap"
    status, out, _ = run(capsys, "pcap", "show", "-q", "--stats", str(path))
    assert status == 0
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("│")}
    assert "928" in rows["TCP"] and "63" in rows["TCP"]
    assert "28" in rows["UDP"] and "14" in rows["UDP"]
    assert "956" in rows["total"] and "77" in rows["total"]
    assert "Flags" not in out  # -q: no packet lines


def test_bundled_sample_is_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "pcap", "show", "--stats")
    assert status == 0
    assert out.count("Flags [") == 41
    assert "sample-http.pcap" in out


def test_count_limit(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "pcap", "show", "-c", "5")
    assert status == 0 and len(out.splitlines()) == 5


def test_pcapng_and_gzip(
    capsys: pytest.CaptureFixture[str], shared_data: Path, tmp_path: Path
) -> None:
    from scapy.utils import PcapNgWriter, rdpcap

    src = shared_data / "pcap" / "icmp-traceroute-ttl-exceeded.pcap"
    ng = tmp_path / "trace.pcapng"
    with PcapNgWriter(str(ng)) as w:
        for p in rdpcap(str(src)):
            w.write(p)
    gz = tmp_path / "trace.pcap.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    outs = []
    for path in (src, ng, gz):
        status, out, _ = run(capsys, "pcap", "show", str(path))
        assert status == 0
        outs.append(out)
    assert outs[0] == outs[1] == outs[2]
    assert outs[0].count("ICMP time exceeded (ttl exceeded)") > 0


def test_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, _, err = run(capsys, "pcap", "show", str(tmp_path / "nope.pcap"))
    assert status == 2
    assert err.strip() == f"netfast: error: {tmp_path / 'nope.pcap'}: no such file"


def test_truncated_file_names_offset(
    capsys: pytest.CaptureFixture[str], shared_data: Path, tmp_path: Path
) -> None:
    data = (shared_data / "pcap" / "http-google-get.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:1000])
    status, out, err = run(capsys, "pcap", "show", str(cut))
    assert status == 2
    assert f"{cut}: offset " in err and "truncated" in err
    shown = len(out.splitlines())
    status, out2, err2 = run(capsys, "pcap", "show", "--tolerate-truncation", str(cut))
    assert status == 0 and "warning" in err2
    assert len(out2.splitlines()) == shown


def test_garbage_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("this is not a capture file at all\n")
    status, _, err = run(capsys, "pcap", "show", str(bad))
    assert status == 2
    assert f"{bad}: offset 0:" in err and "magic" in err


def test_malformed_packets_are_shown_not_fatal(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    good = bytes(Ether() / IP(src="198.18.0.1", dst="198.18.0.2") / TCP(dport=80, flags="S"))
    frames = [
        good,
        good[:20],  # IPv4 header cut off
        good[:14] + b"\x46" + good[15:],  # IHL 6 but no options present: bad checksum and length
        good[:14] + b"\x43" + good[15:],  # IHL 3: impossible
        good[:46] + b"\x10" + good[47:],  # TCP data offset 1: impossible
        b"\x01\x02",  # a runt
    ]
    path = tmp_path / "bad.pcap"
    with path.open("wb") as f:
        w = PcapWriter(f)
        for i, frame in enumerate(frames):
            w.write(frame, 1_000_000_000 * i)
    status, out, _ = run(capsys, "pcap", "show", "--stats", str(path))
    assert status == 0
    lines = [line for line in out.splitlines() if line.startswith("1970")]
    assert len(lines) == len(frames)
    assert "[malformed" not in lines[0]
    assert all("[malformed" in line for line in lines[1:]), lines
    assert "ipv4.ihl = 3" in lines[3]
    assert "tcp.data_offset" in lines[4]


def test_console_script_runs() -> None:
    """The installed entry point, as a user types it (and as `make run` calls it)."""
    exe = Path(sys.executable).parent / "netfast"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "netfast"]
    proc = subprocess.run(
        [*cmd, "pcap", "show", "-c", "3"], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 3
