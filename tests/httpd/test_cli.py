"""``netfast httpd`` argument handling: every mistake is one clear line and exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from netfast.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        code = main(["httpd", *argv])
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "٣٣"], "is not a whole number"),  # Arabic-Indic digits: int() would take them
        (["--port", "+80"], "is not a whole number"),
        (["--port", "70000"], "not in 0..65535"),
        (["--workers", "0"], "not in 1..64"),
        (["--idle-timeout", "nan"], "positive number of seconds"),
        (["--header-timeout", "-1"], "positive number of seconds"),
        (["--tap", "x"], "--tap and --addr go with --backend netfast"),
        (["--backend", "netfast"], "needs --tap NAME and --addr"),
    ],
)
def test_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, err = run(capsys, str(tmp_path), *argv)
    assert code == 2 and message in err, err
    assert "Traceback" not in err


def test_root_must_be_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    for root in (f, tmp_path / "missing"):
        code, err = run(capsys, str(root))
        assert code == 2 and "not a directory" in err


def test_access_log_that_cannot_be_opened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(capsys, str(tmp_path), "--access-log", str(tmp_path / "no" / "such" / "log"))
    assert code == 2 and "cannot open the access log" in err


def test_port_in_use_is_a_clean_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        port = str(holder.getsockname()[1])
        code, err = run(capsys, str(tmp_path), "--port", port, "--access-log", "off")
    finally:
        holder.close()
    # SO_REUSEPORT would let two netfast servers share a port, not a foreign listener.
    assert code == 2 and "cannot listen on 127.0.0.1:" in err, err


def test_serves_for_a_duration_and_stops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.txt").write_text("a")
    code, err = run(
        capsys, str(tmp_path), "--port", "0", "--duration", "0.3", "--access-log", "off"
    )
    assert code == 0 and "serving" in err
