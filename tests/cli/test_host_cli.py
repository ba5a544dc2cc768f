"""`netfast host`: help, one-line errors with exit status 2, and a short run printing counters."""

from __future__ import annotations

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
