"""`netfast fw check` and `netfast fw show`: normalized output, errors with exit status 2,
counters from a capture."""

from __future__ import annotations

from pathlib import Path

import pytest

from netfast.cli import main
from netfast.pfil.ipfw import parse_rules


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_check_prints_normalized_rules(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "r.fw"
    path.write_text(
        "# web\nallow tcp from any to me http,https setup  # in\ncount ip from any to any\n"
    )
    status, out, err = run(capsys, "fw", "check", str(path))
    assert status == 0 and err == ""
    assert out.splitlines() == [
        "00100 allow tcp from any to me 80,443 setup",
        "00200 count ip from any to any",
        "65535 deny ip from any to any",
    ]
    # the output is itself a valid rule file with the same rules
    assert parse_rules(out).rules == parse_rules(path.read_text()).rules


def test_check_error_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "bad.fw"
    path.write_text("allow ip from any to any\n\nallow tcp from any to any 90-80\n")
    status, out, err = run(capsys, "fw", "check", str(path))
    assert status == 2 and out == ""
    assert err == (
        f"netfast: error: {path}: rule 200 (line 3), column 27: expected a port range low-high "
        "with low <= high, found '90-80'\n"
    )
    status, _, err = run(capsys, "fw", "check", str(tmp_path / "missing.fw"))
    assert status == 2 and "no such file" in err


def test_check_the_sample_ruleset(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib import resources

    with resources.as_file(resources.files("netfast.data") / "sample-rules.fw") as path:
        status, out, _ = run(capsys, "fw", "check", str(path))
    assert status == 0
    assert "table bogons add 10.0.0.0/8" in out
    assert "00400 allow tcp from 145.254.160.0/24 to any 80,443 setup keep-state" in out


def test_show_file_has_zero_counters(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "r.fw"
    path.write_text("allow udp from any to any domain\n")
    status, out, _ = run(capsys, "fw", "show", str(path), "--default-allow")
    assert status == 0
    rows = [line for line in out.splitlines() if line.startswith("│")]
    assert len(rows) == 2
    assert rows[0].split("│")[1:4] == [" 00100 ", "       0 ", "     0 "]
    assert "allow udp from any to any 53" in rows[0]
    assert "allow ip from any to any" in rows[1]


def test_show_runs_a_capture_through_the_sample(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib import resources

    with resources.as_file(resources.files("netfast.data") / "sample-http.pcap") as pcap:
        status, out, _ = run(capsys, "fw", "show", "--pcap", str(pcap))
    assert status == 0
    rows = {line.split("│")[1].strip(): line.split("│") for line in out.splitlines() if "│" in line}
    # 43 packets: 34 of the connection whose SYN is captured (rule 400 and its state), 7 of the
    # connection already open (picked up by rule 450), the DNS query and its answer (rule 500).
    assert rows["00400"][2].strip() == "34"
    assert rows["00450"][2].strip() == "7"
    assert rows["00500"][2].strip() == "2"
    assert rows["00300"][2].strip() == "1"  # one SYN counted
    assert rows["65535"][2].strip() == "0"
    assert "43 IPv4 packets: 43 passed, 0 dropped" in out.replace("\n", " ")


def test_show_capture_drops_and_replies(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, shared_data: Path
) -> None:
    path = tmp_path / "r.fw"
    path.write_text("reset tcp from any to any setup\nallow ip from any to any\n")
    pcap = shared_data / "pcap" / "tcp-handshake.pcap"
    status, out, _ = run(capsys, "fw", "show", str(path), "--pcap", str(pcap))
    assert status == 0
    rows = {line.split("│")[1].strip(): line.split("│") for line in out.splitlines() if "│" in line}
    assert rows["00100"][2].strip() == "1"  # the one SYN
    assert "1 replies" in out.replace("\n", " ")


def test_table_from_a_route_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    routes = tmp_path / "routes.txt"
    routes.write_text("145.254.160.0/24\t64500\n")
    rules = tmp_path / "r.fw"
    rules.write_text("deny ip from table(inside) to any\nallow ip from any to any\n")
    from importlib import resources

    with resources.as_file(resources.files("netfast.data") / "sample-http.pcap") as pcap:
        status, out, _ = run(
            capsys, "fw", "show", str(rules), "--table", f"inside={routes}", "--pcap", str(pcap)
        )
    assert status == 0
    rows = {line.split("│")[1].strip(): line.split("│") for line in out.splitlines() if "│" in line}
    # the packets sent by the client on the inside network
    assert rows["00100"][2].strip() == "20"
    status, _, err = run(capsys, "fw", "check", str(rules))
    assert status == 2 and "expected a defined table" in err


def test_show_pcap_unreadable_capture_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    # Opens, then every read fails (EIO), for root too.
    assert main(["fw", "show", "--pcap", "/proc/self/mem"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("netfast: error: /proc/self/mem: cannot read") and "Traceback" not in err
