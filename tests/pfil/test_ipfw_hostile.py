"""Rule files written by an attacker: every number is ASCII digits or a FirewallError, lines are
the file's own lines, messages are bounded, and `netfast fw check` never shows a traceback."""

from __future__ import annotations

import random
import time
from importlib import resources
from pathlib import Path

import pytest

from netfast.cli import main
from netfast.pfil.ipfw import FirewallError, Ruleset, load_rules, parse_rules, read_rules
from netfast.textnum import ascii_int, file_lines, has_leading_zero, parse_quad, shown

SAMPLE = (resources.files("netfast.data") / "sample-rules.fw").read_text()

# Digits int() reads but a rule file must not: superscript two, Arabic-Indic and Devanagari
# digits, a fullwidth one.
UNICODE_DIGITS = ["\u00b2", "\u0663", "\u0968", "\uff11"]


def numbers(rs: Ruleset) -> list[int]:
    """The numbers of a ruleset's own rules (not the default rule)."""
    return [r.number for r in rs.rules if r.number != 65535]


# -- the shared number parser --------------------------------------------------------------------


def test_ascii_int_takes_ascii_digits_only() -> None:
    assert ascii_int("00100", 1, 65534) == 100
    assert ascii_int("0", 0, 5) == 0
    for bad in ["", "+1", "-1", " 1", "1 ", "1_0", "0x10", "1.0", *UNICODE_DIGITS]:
        assert ascii_int(bad, 0, 1 << 40) is None, bad
    assert ascii_int("65536", 0, 65535) is None
    assert ascii_int("0" * 50 + "7", 0, 9) == 7
    # Far past the interpreter's int-from-string digit limit: None, not ValueError.
    assert ascii_int("9" * 10_000, 0, 65535) is None


def test_parse_quad_is_strict() -> None:
    assert parse_quad("198.18.0.1") == 0xC6120001
    assert parse_quad("0.0.0.0") == 0
    for bad in ["010.0.0.1", "1.2.3", "1.2.3.4.5", "1.2.3.256", "1..3.4", "1.2.3.\u0664"]:
        assert parse_quad(bad) is None, bad
    assert has_leading_zero("010.0.0.1") and has_leading_zero("10.0.0.01")
    assert not has_leading_zero("10.0.0.1") and not has_leading_zero("1.2.3.\u0664")


def test_file_lines_split_on_newline_only() -> None:
    text = "a\x0cb\r\nc\x85d\u2028e\rf\n\ng"
    assert list(file_lines(text)) == [(1, "a\x0cb"), (2, "c\x85d\u2028e\rf"), (3, ""), (4, "g")]
    # What str.splitlines() does instead: eight lines out of four.
    assert len(text.splitlines()) == 8


def test_shown_bounds_and_escapes() -> None:
    assert shown("abc") == "abc"
    assert shown("a\x1b[2Jb") == "a\\x1b[2Jb"
    long = shown("x" * 1_000_000)
    assert len(long) < 100 and "1,000,000 characters" in long


# -- Unicode digits in every numeric position ----------------------------------------------------

# A rule per numeric position; "N" is replaced by a number (a valid one parses).
POSITIONS = {
    "rule number": ("N allow ip from any to any", "100"),
    "skipto": ("100 skipto N ip from any to any", "200"),
    "unreach code": ("unreach N ip from any to any", "3"),
    "protocol": ("allow N from any to any", "47"),
    "port": ("allow tcp from any to any N", "80"),
    "port range": ("allow tcp from any 1-N to any", "1024"),
    "port list": ("allow udp from any to any 53,N", "123"),
    "octet": ("allow ip from 10.0.0.N to any", "1"),
    "prefix length": ("allow ip from 10.0.0.0/N to any", "8"),
    "mask": ("allow ip from 10.0.0.0:255.0.0.N to any", "0"),
    "range": ("allow ip from 10.0.0.1-10.0.0.N to any", "9"),
    "list item": ("allow ip from { 10.0.0.1, 10.0.0.N } to any", "2"),
    "icmp type": ("allow icmp from any to any icmptypes 0,N", "8"),
    "ttl": ("allow ip from any to any ttl N", "64"),
    "ttl range": ("allow ip from any to any ttl 1-N", "64"),
    "state limit": ("allow tcp from any to any keep-state limit N", "10"),
    "table prefix": ("table t add 10.0.0.0/N\nallow ip from table(t) to any", "8"),
    "table octet": ("table t add 10.N.0.0/16\nallow ip from table(t) to any", "1"),
}


@pytest.mark.parametrize("position", sorted(POSITIONS))
def test_valid_number_parses(position: str) -> None:
    template, good = POSITIONS[position]
    parse_rules(template.replace("N", good), "r.fw")


@pytest.mark.parametrize("digit", UNICODE_DIGITS)
@pytest.mark.parametrize("position", sorted(POSITIONS))
def test_unicode_digit_is_a_firewall_error(position: str, digit: str) -> None:
    template, good = POSITIONS[position]
    bad = good[:-1] + digit
    text = template.replace("N", bad)
    with pytest.raises(FirewallError) as info:
        parse_rules(text, "r.fw")
    err = info.value
    lines = text.split("\n")
    line_no = next(i for i, line in enumerate(lines, 1) if digit in line)
    assert err.line == line_no, str(err)
    # The column points at the token holding the bad digit.
    token = lines[line_no - 1][err.column - 1 :].split()[0]
    assert digit in token and digit in err.found, str(err)
    assert "invalid literal" not in str(err)


@pytest.mark.parametrize("position", sorted(POSITIONS))
def test_huge_number_is_a_firewall_error(position: str) -> None:
    template, _ = POSITIONS[position]
    with pytest.raises(FirewallError) as info:
        parse_rules(template.replace("N", "9" * 5000), "r.fw")
    assert len(str(info.value)) < 600


def test_rule_numbers_keep_their_leading_zeros() -> None:
    rs = parse_rules("00100 allow ip from any to any\n0000200 deny ip from any to any\n")
    assert numbers(rs) == [100, 200]


@pytest.mark.parametrize(
    "text",
    [
        "allow ip from 010.0.0.0/8 to any",
        "allow ip from any to 10.0.0.01",
        "allow ip from 10.0.0.0:255.000.0.0 to any",
        "allow ip from 10.0.0.1-010.0.0.9 to any",
        "table t add 010.0.0.0/8",
    ],
)
def test_leading_zero_octets_refused(text: str) -> None:
    with pytest.raises(FirewallError, match="leading zeros"):
        parse_rules(text, "r.fw")


# -- lines -------------------------------------------------------------------------------------


@pytest.mark.parametrize("sep", ["\x0c", "\x0b", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\r"])
def test_separator_in_comment_keeps_file_and_line_numbers(sep: str) -> None:
    text = f"# a comment{sep}allow ip from any to any\n100 allow ip from any to any\n"
    rs = parse_rules(text, "r.fw")
    assert numbers(rs) == [100]
    assert rs.rules[0].line == 2
    bad = f"# x{sep}y\n# z{sep}w\n100 allow ip from any to any\n200 frobnicate\n"
    with pytest.raises(FirewallError) as info:
        parse_rules(bad, "r.fw")
    assert info.value.line == 4, str(info.value)


def test_crlf_file(tmp_path: Path) -> None:
    path = tmp_path / "r.fw"
    path.write_bytes(SAMPLE.replace("\n", "\r\n").encode())
    crlf = load_rules(path)
    plain = parse_rules(SAMPLE, "r.fw")
    assert crlf.text() == plain.text()
    assert [r.line for r in crlf.rules] == [r.line for r in plain.rules]


def test_line_numbers_are_the_files(tmp_path: Path) -> None:
    # A lone CR in a comment is not a line break: read_rules must not translate newlines.
    path = tmp_path / "r.fw"
    path.write_bytes(b"# one\rtwo\n# three\n100 allow ip from any to any\n200 allow ip frm any\n")
    with pytest.raises(FirewallError) as info:
        load_rules(path)
    assert info.value.line == 4, str(info.value)


# -- encodings and messages ----------------------------------------------------------------------


def test_not_utf8_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "r.fw"
    path.write_bytes(b"100 allow ip from any to any\n# caf\xe9\n")
    with pytest.raises(FirewallError) as info:
        read_rules(path)
    assert (info.value.line, info.value.column) == (2, 6)
    assert str(info.value) == f"{path}: line 2, column 6: expected UTF-8 text, found byte 0xe9"


def test_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "r.fw"
    path.write_bytes(b"\xef\xbb\xbf100 allow ip from any to any\n")
    assert numbers(load_rules(path)) == [100]


def test_messages_are_bounded_and_escaped() -> None:
    with pytest.raises(FirewallError) as info:
        parse_rules("allow ip from " + "1" * 2_000_000 + " to any", "r.fw")
    assert len(str(info.value)) < 600
    with pytest.raises(FirewallError) as info:
        parse_rules("allow ip from \x1b]0;pwned\x07 to any", "r.fw")
    assert "\x1b" not in str(info.value) and "\\x1b" in str(info.value)


def test_cli_check_not_utf8_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.fw"
    path.write_bytes(SAMPLE.encode() + b"\n# \xff\xfe\n")
    assert main(["fw", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "expected UTF-8 text, found byte 0xff" in err


# -- mutation fuzz -------------------------------------------------------------------------------

_INSERTS = [
    *UNICODE_DIGITS,
    "\x00",
    "\x0c",
    "\x85",
    "\u2028",
    "\r",
    "\n",
    "#",
    "{",
    "}",
    ",",
    "-",
    "/",
    ":",
    "!",
    "(",
    ")",
    " ",
    "9" * 6000,
    "010",
    "65535",
    "table(",
    "not ",
    "keep-state limit ",
]


def _mutate(rng: random.Random, text: str) -> bytes:
    data = bytearray(text.encode())
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        at = rng.randrange(len(data) + 1)
        if op == 0 and data:  # flip one byte (may break UTF-8)
            data[min(at, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:  # insert a hostile piece
            data[at:at] = rng.choice(_INSERTS).encode()
        elif op == 2:  # delete a run
            del data[at : at + rng.randint(1, 20)]
        elif op == 3:  # swap a digit for a Unicode one
            digits = [i for i, b in enumerate(data) if 0x30 <= b <= 0x39]
            if digits:
                i = rng.choice(digits)
                data[i : i + 1] = rng.choice(UNICODE_DIGITS).encode()
        elif op == 4:  # duplicate a line
            lines = bytes(data).split(b"\n")
            j = rng.randrange(len(lines))
            lines.insert(j, lines[j])
            data = bytearray(b"\n".join(lines))
        else:  # truncate
            del data[at:]
    return bytes(data)


def test_fw_check_mutated_rule_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Seeded mutations of the bundled ruleset through `netfast fw check`, in process: exit 0 or
    2 with one error line, never an exception.  Bounded by count and by a few seconds."""
    rng = random.Random(17)
    path = tmp_path / "r.fw"
    deadline = time.monotonic() + 4.0
    runs = 0
    statuses = set()
    while runs < 3000 and time.monotonic() < deadline:
        data = _mutate(rng, SAMPLE)
        path.write_bytes(data)
        try:
            status = main(["fw", "check", str(path)])
        except BaseException as exc:  # pragma: no cover - the failure being tested for
            pytest.fail(f"fw check raised {exc!r} on input {data[:300]!r}")
        out = capsys.readouterr()
        assert status in (0, 2), data[:300]
        if status == 2:
            assert out.err.startswith("netfast: error: ") and out.err.count("\n") == 1, out.err
            assert "Traceback" not in out.err and "invalid literal" not in out.err
            assert len(out.err) < 1000, out.err[:300]
        statuses.add(status)
        runs += 1
    assert runs >= 50
    assert statuses == {0, 2}
