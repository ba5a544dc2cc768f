"""`netfast host`: help, one-line errors with exit status 2, and a short run printing counters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from tests.conftest import have_netns
from tests.netns import unique_name

from netfast.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["host", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--tap", "--addr", "--gateway", "--mac", "--duration", "--mtu", "--stats"):
        assert option in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--addr", "198.18.0.300/24"], "--addr '198.18.0.300/24'"),
        (["--addr", "198.18.0.2"], "prefix length"),
        (["--addr", "2001:db8::1/64"], "IPv4"),
        (["--addr", "198.18.0.2/24", "--gateway", "198.19.0.1"], "not on the --addr subnet"),
        (["--addr", "198.18.0.2/24", "--gateway", "nope"], "--gateway 'nope'"),
        (["--addr", "198.18.0.2/24", "--mac", "01:00:5e:00:00:01"], "multicast"),
        (["--addr", "198.18.0.2/24", "--mac", "zz"], "--mac 'zz'"),
        (["--addr", "198.18.0.2/24", "--mtu", "20"], "--mtu 20"),
        (["--addr", "198.18.0.2/24", "--duration", "-1"], "--duration"),
    ],
)
def test_bad_arguments_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    status, out, err = run(capsys, "host", "--tap", "nfnotused0", *argv)
    assert status == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("netfast: error: ") and needle in lines[0]


@pytest.mark.netns
def test_short_run_prints_stats(capsys: pytest.CaptureFixture[str]) -> None:
    reason = have_netns()
    if reason:
        pytest.skip(reason)
    name = unique_name("h")
    status, out, err = run(
        capsys, "host", "--tap", name, "--addr", "198.18.9.2/24", "--duration", "0.3", "--stats"
    )
    assert status == 0, err
    assert f"on {name}" in out
    assert "pings answered 0" in out
    assert "host stack counters" in out and f"link {name}" in out


ECHO_AND_DISCARD = """
import socket
s = socket.create_connection(("198.18.12.2", 7), timeout=5)
msg = bytes(range(256)) * 400
s.sendall(msg)
got = b""
while len(got) < len(msg):
    chunk = s.recv(65536)
    if not chunk:
        break
    got += chunk
s.close()
d = socket.create_connection(("198.18.12.2", 9), timeout=5)
d.sendall(b"x" * 1_000_000)
d.close()
print("echo ok" if got == msg else "echo bad %d" % len(got))
"""


def run_host_for(
    extra: list[str], client: list[str], prepare: Callable[[str], None] = lambda ns: None
) -> tuple[subprocess.CompletedProcess[str], int, str, str]:
    """`netfast host` on a new TAP whose kernel side is moved into a namespace at
    198.18.12.1/24 (netfast is .2), ``prepare(ns)`` there, then ``client`` (argv run in the
    namespace); SIGTERM ends the host.  Returns the client's run, and the host's exit status,
    stdout and stderr."""
    from tests.netns import Sandbox

    name = unique_name("h")
    argv = [sys.executable, "-m", "netfast", "host", "--tap", name, "--addr", "198.18.12.2/24",
            "--duration", "60", *extra]  # fmt: skip
    with Sandbox() as sandbox:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 20
            while not os.path.exists(f"/sys/class/net/{name}") and time.monotonic() < deadline:
                time.sleep(0.05)
            ns = sandbox.netns()
            sandbox.move(name, ns)
            sandbox.address(ns, name, "198.18.12.1/24")
            prepare(ns)
            done = subprocess.run(
                ["ip", "netns", "exec", ns, *client],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=20)
    assert f"on {name}" in out
    return done, proc.returncode, out, err


@pytest.mark.netns
@pytest.mark.slow
@pytest.mark.parametrize("offloads", [False, True], ids=["plain", "offloads"])
def test_host_serves_tcp_echo_and_discard_to_linux(offloads: bool) -> None:
    """The command a user runs: `netfast host` on a TAP whose kernel side is moved into a
    namespace; a Linux TCP client there gets its bytes echoed on port 7 and sends 1 MB to
    discard on port 9; SIGTERM ends the run with the counters printed."""
    reason = have_netns()
    if reason:
        pytest.skip(reason)
    done, status, out, err = run_host_for(
        ["--stats", *(["--offloads"] if offloads else [])], ["python3", "-c", ECHO_AND_DISCARD]
    )
    assert done.stdout.strip() == "echo ok", (done.stdout, done.stderr, err)
    assert status == 0, err
    assert "tcp connections 2" in out
    assert "tcp.in.bytes" in out


@pytest.mark.netns
@pytest.mark.slow
def test_host_fastopen_takes_data_on_syn_from_a_linux_client() -> None:
    """`netfast host --fastopen`: a Linux client with MSG_FASTOPEN (net.ipv4.tcp_fastopen=3 in
    its namespace) fetches a cookie on its first connection and sends its request in the SYN
    of every later one; the summary line counts them."""
    reason = have_netns()
    if reason:
        pytest.skip(reason)
    from netfast.bench.netns import enable_fastopen
    from netfast.bench.ttcp import LINUX_CLIENT

    client = ["python3", "-c", LINUX_CLIENT, "198.18.12.2", "7", "3", "sendto", "50"]
    done, status, out, err = run_host_for(["--fastopen"], client, enable_fastopen)
    assert done.returncode == 0, (done.stdout, done.stderr, err)
    rounds = json.loads(done.stdout)["rounds"]
    assert [r["ok"] for r in rounds] == [True] * 3
    assert [r["syn_data"] for r in rounds] == [False, True, True]
    assert status == 0, err
    flat = " ".join(out.split())  # the console wraps long lines
    assert "data on SYN (T/TCPv2, TCP Fast Open)" in flat
    assert "tcp connections 3 (2 by data on SYN)" in flat
