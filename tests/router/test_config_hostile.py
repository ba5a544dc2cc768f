"""Router configs written by an attacker: what validation accepts the router can run with, files
that are missing or not text give a ConfigError naming key and path, and nothing raises more
than the module's own errors."""

from __future__ import annotations

import math
import random
import shutil
import time
from importlib import resources
from pathlib import Path

import pytest

from netfast.cli import main
from netfast.ip.router import Router
from netfast.pfil.ipfw import FirewallError
from netfast.route.loaders import RouteFileError
from netfast.router.build import build_router, build_table, check_files, load_ruleset
from netfast.router.config import (
    _ROUTER_KEYS,
    ConfigError,
    load_config,
    parse_config,
)

BASE = """
[[interface]]
name = "eth0"
mac = "02:00:00:00:00:01"
addresses = ["198.18.0.1/24"]

[[interface]]
name = "eth1"
mac = "02:00:00:00:00:02"
addresses = ["198.18.1.1/24"]
"""

DATA = resources.files("netfast.data")
DEFAULT_TOML = (DATA / "router-default.toml").read_text()
SAMPLE_RULES = (DATA / "sample-rules.fw").read_text()
UNICODE_DIGITS = ["\u00b2", "\u0663", "\u0968", "\uff11"]


def config_error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "r.toml")
    assert str(info.value).startswith("r.toml: ")
    return info.value


# -- [router]: validation accepts only what the runtime can use --------------------------------

CANDIDATES = [0, 1, -1, 0.0, -0.0, 1e-9, 0.5, 1, 50, 1 << 20, (1 << 20) + 1, 1e9, 1e12, 10**30]
SPECIAL = ["nan", "inf", "-inf", "+inf"]


@pytest.mark.parametrize("key", sorted(_ROUTER_KEYS))
@pytest.mark.parametrize("value", [repr(v) for v in CANDIDATES] + SPECIAL)
def test_router_option_accepted_means_usable(key: str, value: str) -> None:
    text = f"[router]\n{key} = {value}\n" + BASE
    try:
        cfg = parse_config(text, "r.toml")
    except ConfigError as exc:
        assert exc.key == f"router.{key}", str(exc)
        return
    opts = cfg.router_options
    assert all(math.isfinite(v) for v in opts.values())
    # Every accepted value builds a Router and its ARP cache and ICMP bucket work.
    router = Router(cfg.ifaces, build_table(cfg)[0], **opts)
    router.icmp.bucket.take(0.0)
    router.icmp.bucket.take(1.0)
    router.arp.poll(0.0)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("icmp_burst = 0", "router.icmp_burst"),
        ("arp_timeout = 0", "router.arp_timeout"),
        ("arp_timeout = 0.0", "router.arp_timeout"),
        ("arp_retries = 0", "router.arp_retries"),
        ("arp_retry_interval = 0", "router.arp_retry_interval"),
        ("arp_hold = -1", "router.arp_hold"),
        ("icmp_rate = nan", "router.icmp_rate"),
        ("icmp_rate = inf", "router.icmp_rate"),
        ("arp_timeout = inf", "router.arp_timeout"),
        ("arp_retry_interval = nan", "router.arp_retry_interval"),
        ("arp_timeout = " + "9" * 400, "router.arp_timeout"),
        ("arp_hold = " + "9" * 400, "router.arp_hold"),
    ],
)
def test_router_option_refused(text: str, key: str) -> None:
    err = config_error(f"[router]\n{text}\n" + BASE)
    assert err.key == key
    assert len(str(err)) < 300


def test_burst_zero_allowed_without_rate_limit() -> None:
    cfg = parse_config("[router]\nicmp_rate = 0\nicmp_burst = 0\n" + BASE, "r.toml")
    Router(cfg.ifaces, build_table(cfg)[0], **cfg.router_options)


def test_integer_past_the_digit_limit() -> None:
    err = config_error("[router]\narp_hold = " + "9" * 5000 + "\n" + BASE)
    assert "thousands of digits" in str(err)


def test_deeply_nested_toml() -> None:
    err = config_error(BASE + "x = " + "[" * 20_000 + "]" * 20_000 + "\n")
    assert "nested too deeply" in str(err)
    err = config_error(BASE + "x = " + "{a = " * 5000 + "1" + "}" * 5000 + "\n")
    assert "nested too deeply" in str(err)


# -- files the router reads ----------------------------------------------------------------------


def _site(tmp_path: Path, routes: str = "", firewall: str = "") -> Path:
    path = tmp_path / "r.toml"
    path.write_text(BASE + routes + firewall)
    return path


HASH = '\n[routes]\ntable = "{}"\nhash_over = ["via 198.18.1.2 dev eth1"]\n'


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_route_table_missing_or_directory(tmp_path: Path, kind: str) -> None:
    if kind == "directory":
        (tmp_path / "t").mkdir()
    cfg = load_config(_site(tmp_path, HASH.format("t")))
    with pytest.raises(ConfigError) as info:
        build_router(cfg, vector=False)
    assert info.value.key == "routes.table"
    assert str(tmp_path / "t") in str(info.value)
    # build_table alone (no check_files first) says the same.
    with pytest.raises(ConfigError) as info:
        build_table(cfg)
    assert info.value.key == "routes.table" and str(tmp_path / "t") in str(info.value)


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_rules_missing_or_directory_before_the_table_loads(tmp_path: Path, kind: str) -> None:
    if kind == "directory":
        (tmp_path / "f").mkdir()
    shutil.copy(Path(str(DATA / "ipv4-dfz-20260619.txt.gz")), tmp_path / "t.gz")
    cfg = load_config(_site(tmp_path, HASH.format("t.gz"), '\n[firewall]\nrules = "f"\n'))
    with pytest.raises(ConfigError) as info:
        check_files(cfg)
    assert info.value.key == "firewall.rules" and str(tmp_path / "f") in str(info.value)
    with pytest.raises(ConfigError):
        load_ruleset(cfg)


def test_rules_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "f.fw").write_bytes(SAMPLE_RULES.encode() + b"# \xc3\x28\n")
    cfg = load_config(_site(tmp_path, firewall='\n[firewall]\nrules = "f.fw"\n'))
    with pytest.raises(FirewallError) as info:
        build_router(cfg, vector=False)
    assert info.value.line == SAMPLE_RULES.count("\n") + 1
    assert "expected UTF-8 text" in str(info.value)


def test_forward_with_bad_files_exits_2(
    tmp_path: Path, shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pcap = shared_data / "pcap" / "icmp-echo.pcap"
    (tmp_path / "f.fw").write_bytes(b"100 allow ip from any to any\n# \xff\n")
    for routes, firewall in [
        (HASH.format("missing.gz"), ""),
        (HASH.format("."), ""),
        ("", '\n[firewall]\nrules = "f.fw"\n'),
        ("", '\n[firewall]\nrules = "nope.fw"\n'),
    ]:
        cfg = _site(tmp_path, routes, firewall)
        argv = ["forward", "--config", str(cfg), "--in", str(pcap), "--out-dir", str(tmp_path)]
        assert main(argv) == 2, (routes, firewall)
        err = capsys.readouterr().err
        assert err.startswith("netfast: error: ") and err.count("\n") == 1, err


def test_config_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_bytes(BASE.encode() + b"# caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"byte 0xe9 on line {BASE.count(chr(10)) + 1}" in str(info.value)


def test_config_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


# -- names, addresses and MACs -------------------------------------------------------------------


BAD_NAMES = [
    "",
    "e\\u0000",
    "abcdefghijklmnop",
    "\\u00e9" * 8,
    "../victim",
    "/abs",
    "a b",
    "a\\tb",
    "a:1",
    ".",
    "..",
    "\\u001b[31m",
    "a\\u00a0b",
]


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.parametrize("where", ["name", "device"])
def test_bad_interface_names_refused(name: str, where: str) -> None:
    text = (
        BASE.replace('"eth1"', f'"{name}"')
        if where == "name"
        else BASE + (f'link = {{ type = "tap", device = "{name}" }}\n')
    )
    err = config_error(text)
    assert err.key == f"interface[1].{'name' if where == 'name' else 'link.device'}", str(err)
    assert "\x00" not in str(err) and "\x1b" not in str(err)


@pytest.mark.parametrize("name", ["eth0.100", "veth-a_1", "x", "abcdefghijklmno", "br\\u00e90"])
def test_good_interface_names(name: str) -> None:
    cfg = parse_config(BASE.replace('"eth1"', f'"{name}"'), "r.toml")
    assert cfg.ifaces[1].name == name.replace("\\u00e9", "\u00e9")


@pytest.mark.parametrize(
    ("mac", "problem"),
    [
        ("01:00:5e:00:00:01", "multicast"),
        ("ff:ff:ff:ff:ff:ff", "multicast"),
        ("33:33:00:00:00:01", "multicast"),
        ("00:00:00:00:00:00", "all zeros"),
    ],
)
def test_bad_macs_refused(mac: str, problem: str) -> None:
    err = config_error(BASE.replace("02:00:00:00:00:02", mac))
    assert err.key == "interface[1].mac" and problem in err.problem
    err = config_error(BASE + f'[neighbors]\n"198.18.1.2" = "{mac}"\n')
    assert err.key == 'neighbors."198.18.1.2"' and problem in err.problem


@pytest.mark.parametrize(
    ("addr", "problem"),
    [
        ("198.18.1.0/24", "network address"),
        ("198.18.1.255/24", "broadcast address"),
        ("198.18.1.4/30", "network address"),
        ("224.0.0.1/24", "multicast"),
        ("127.0.0.1/8", "loopback"),
        ("0.0.0.1/8", "0/8"),
        ("010.0.0.1/8", "leading zero"),
        ("10.0.0.1/08x", "prefix length"),
        ("10.0.0.1/" + UNICODE_DIGITS[1], "prefix length"),
        (UNICODE_DIGITS[1] + "0.0.0.1/8", "not an address"),
    ],
)
def test_bad_interface_addresses_refused(addr: str, problem: str) -> None:
    err = config_error(BASE.replace("198.18.1.1/24", addr))
    assert err.key == "interface[1].addresses[0]" and problem in err.problem, str(err)


def test_point_to_point_and_host_addresses_accepted() -> None:
    cfg = parse_config(BASE.replace("198.18.1.1/24", "198.18.1.0/31"), "r.toml")
    assert cfg.ifaces[1].addrs[0].plen == 31
    parse_config(BASE.replace("198.18.1.1/24", "198.18.1.255/32"), "r.toml")


@pytest.mark.parametrize("other", ["198.18.0.129/25", "198.18.0.77/24", "198.16.0.1/14"])
def test_overlapping_subnets_on_two_ports_refused(other: str) -> None:
    err = config_error(BASE.replace("198.18.1.1/24", other))
    assert err.key == "interface[1].addresses[0]" and "overlaps" in err.problem, str(err)
    assert "interface[0].addresses[0]" in err.problem


@pytest.mark.parametrize(
    ("extra", "key", "problem"),
    [
        ('"010.0.0.0/8" = "dev eth0"', 'routes."010.0.0.0/8"', "leading zero"),
        ('"10.0.0.0/\u00b2" = "dev eth0"', 'routes."10.0.0.0/\u00b2"', "prefix length"),
        ('"10.0.0.0/\u0668" = "dev eth0"', 'routes."10.0.0.0/\u0668"', "prefix length"),
        ('"\u0661\u0660.0.0.0/8" = "dev eth0"', 'routes."\u0661\u0660.0.0.0/8"', "not an IPv4"),
        ('"10.0.0.0/8" = "via 198.18.1.0\u0662"', 'routes."10.0.0.0/8"', "not an IPv4"),
        ('"10.0.0.0/8" = "via 198.018.1.2"', 'routes."10.0.0.0/8"', "leading zero"),
        ('"10.0.0.0/8" = "via 198.18.1.1"', 'routes."10.0.0.0/8"', "own address"),
    ],
)
def test_route_numbers_ascii_only(extra: str, key: str, problem: str) -> None:
    err = config_error(BASE + "[routes]\n" + extra + "\n")
    assert err.key == key and problem in err.problem, str(err)
    assert "invalid literal" not in str(err)


@pytest.mark.parametrize(
    ("addr", "problem"),
    [
        ("198.18.1.0", "network or broadcast"),
        ("198.18.1.255", "network or broadcast"),
        ("198.18.1.1", "own address"),
        ("198.18.01.2", "leading zero"),
        ("198.18.1.\u0662", "not an IPv4"),
    ],
)
def test_bad_neighbors_refused(addr: str, problem: str) -> None:
    err = config_error(BASE + f'[neighbors]\n"{addr}" = "02:00:00:00:01:02"\n')
    assert err.key == f'neighbors."{addr}"' and problem in err.problem, str(err)


def test_messages_bounded() -> None:
    err = config_error(BASE + '[routes]\n"' + "1" * 100_000 + '/8" = "dev eth0"\n')
    assert len(str(err)) < 500
    err = config_error(BASE.replace("198.18.1.1/24", "x" * 100_000))
    assert len(str(err)) < 500


# -- mutation fuzz -------------------------------------------------------------------------------

_INSERTS = [
    *UNICODE_DIGITS,
    "\x00",
    "\\u0000",
    "\\n",
    "\n",
    "\r",
    "\x0c",
    "0",
    "=",
    '"',
    "[",
    "]",
    "{",
    "}",
    ",",
    "/",
    "nan",
    "inf",
    "-1",
    "9" * 5000,
    "[" * 3000,
    "\n[router]\nicmp_burst = 0\n",
    "\n[router]\narp_timeout = 0\n",
    "../",
    "010.",
    "ff:",
]


def _mutate(rng: random.Random, text: str) -> bytes:
    data = bytearray(text.encode())
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(5)
        at = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(at, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            data[at:at] = rng.choice(_INSERTS).encode()
        elif op == 2:
            del data[at : at + rng.randint(1, 12)]
        elif op == 3:
            digits = [i for i, b in enumerate(data) if 0x30 <= b <= 0x39]
            if digits:
                i = rng.choice(digits)
                data[i : i + 1] = rng.choice("0123456789" + "".join(UNICODE_DIGITS)).encode()
        else:
            del data[at:]
    return bytes(data)


def test_load_config_mutated(tmp_path: Path) -> None:
    """Seeded mutations of the bundled router config (and its rules file) through the loader,
    the rules and the router's assembly (a small table stands in for the DFZ one): only
    ConfigError, FirewallError or RouteFileError, never another exception.  Bounded by count
    and by a few seconds."""
    (tmp_path / "ipv4-dfz-20260619.txt.gz").write_bytes(
        __import__("gzip").compress(b"1.0.0.0/24\t13335\n8.8.8.0/24\t15169\n")
    )
    rules = tmp_path / "sample-rules.fw"
    rules.write_text(SAMPLE_RULES)
    path = tmp_path / "r.toml"
    rng = random.Random(17)
    deadline = time.monotonic() + 4.0
    runs = built = 0
    while runs < 2000 and time.monotonic() < deadline:
        path.write_bytes(_mutate(rng, DEFAULT_TOML))
        if runs % 4 == 0:
            rules.write_bytes(_mutate(rng, SAMPLE_RULES))
        try:
            cfg = load_config(path)
            build_router(cfg, vector=False)
            built += 1
        except (ConfigError, FirewallError, RouteFileError) as exc:
            assert len(str(exc)) < 1000, str(exc)[:300]
            assert "invalid literal" not in str(exc) and "Traceback" not in str(exc)
        except BaseException as exc:  # pragma: no cover - the failure being tested for
            pytest.fail(f"{exc!r} on config {path.read_bytes()[:400]!r}")
        finally:
            if runs % 4 == 0:
                rules.write_text(SAMPLE_RULES)
        runs += 1
    assert runs >= 50 and built >= 1
