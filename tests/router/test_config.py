"""Router descriptions: what a valid file builds; every mistake names file, key and problem."""

from __future__ import annotations

import gzip
import ipaddress
import zlib
from pathlib import Path

import pytest

from netfast.ip.iface import NextHop
from netfast.route.loaders import RouteFileError
from netfast.router.build import build_table, load_ruleset
from netfast.router.config import ConfigError, load_config, parse_config
from netfast.router.demo import default_config_path

BASE = """
[[interface]]
name = "eth0"
mac = "02:00:00:00:00:01"
addresses = ["198.18.0.1/24"]

[[interface]]
name = "eth1"
mac = "02:00:00:00:00:02"
addresses = ["198.18.1.1/24", "198.18.5.1/30"]
mtu = 1400
"""


def ip(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def next_hop_of(table, addr: str) -> NextHop | None:  # type: ignore[no-untyped-def]
    rid = table.lookup(ip(addr))
    return None if rid < 0 else table.rib.value_of(rid)


def test_interfaces_and_connected_routes() -> None:
    cfg = parse_config(BASE, "r.toml")
    eth0, eth1 = cfg.ifaces
    assert (eth0.index, eth0.name, eth0.mac, eth0.mtu) == (
        0,
        "eth0",
        bytes.fromhex("020000000001"),
        1500,
    )
    assert eth1.mtu == 1400
    assert [(a.addr, a.plen) for a in eth1.addrs] == [
        (ip("198.18.1.1"), 24),
        (ip("198.18.5.1"), 30),
    ]
    table, route_stats = build_table(cfg)
    assert next_hop_of(table, "198.18.0.77") == NextHop(0, None)
    assert next_hop_of(table, "198.18.5.2") == NextHop(1, None)
    assert next_hop_of(table, "8.8.8.8") is None
    assert route_stats["connected"] == 3


def test_static_routes_and_precedence() -> None:
    text = (
        BASE
        + """
[routes]
"0.0.0.0/0" = "via 198.18.1.2 dev eth1"
"203.0.113.0/24" = "via 198.18.0.9"
"198.51.100.0/24" = "dev eth0"
"198.18.0.0/24" = "via 198.18.1.3"
"""
    )
    table, _ = build_table(parse_config(text, "r.toml"))
    assert next_hop_of(table, "8.8.8.8") == NextHop(1, ip("198.18.1.2"))
    assert next_hop_of(table, "203.0.113.7") == NextHop(0, ip("198.18.0.9"))
    assert next_hop_of(table, "198.51.100.1") == NextHop(0, None)
    # A static route beats the connected route of the same prefix.
    assert next_hop_of(table, "198.18.0.20") == NextHop(1, ip("198.18.1.3"))


def _write_table(path: Path, lines: list[str]) -> None:
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))


def test_table_hashed_onto_next_hops(tmp_path: Path) -> None:
    _write_table(
        tmp_path / "t.txt.gz", ["1.0.0.0/24\t13335", "2.0.0.0/16\t3320", "3.0.0.0/8\t13335"]
    )
    (tmp_path / "r.toml").write_text(
        BASE
        + """
[routes]
table = "t.txt.gz"
hash_over = ["via 198.18.0.2", "via 198.18.1.2 dev eth1"]
"""
    )
    cfg = load_config(tmp_path / "r.toml")
    table, route_stats = build_table(cfg)
    choices = [NextHop(0, ip("198.18.0.2")), NextHop(1, ip("198.18.1.2"))]
    for addr, origin in (("1.0.0.1", "13335"), ("2.0.9.9", "3320"), ("3.3.3.3", "13335")):
        assert next_hop_of(table, addr) == choices[zlib.crc32(origin.encode()) % 2]
    assert route_stats["table"] == 3


def test_table_next_hops_matched_to_connected_subnets(tmp_path: Path) -> None:
    _write_table(
        tmp_path / "t.txt.gz",
        ["1.0.0.0/24\t198.18.1.7", "2.0.0.0/16\t198.18.0.3", "3.0.0.0/8\t192.0.2.1"],
    )
    (tmp_path / "r.toml").write_text(BASE + '[routes]\ntable = "t.txt.gz"\ntable_map = "nexthop"\n')
    cfg = load_config(tmp_path / "r.toml")
    table, route_stats = build_table(cfg)
    assert next_hop_of(table, "1.0.0.1") == NextHop(1, ip("198.18.1.7"))
    assert next_hop_of(table, "2.0.1.1") == NextHop(0, ip("198.18.0.3"))
    assert next_hop_of(table, "3.1.1.1") is None
    assert route_stats["table.unreachable_next_hop"] == 1


def test_links_neighbors_firewall_and_router_options(tmp_path: Path) -> None:
    text = """
[router]
icmp_rate = 10
arp_hold = 4

[[interface]]
name = "eth0"
mac = "02:00:00:00:00:01"
addresses = ["198.18.0.1/24"]
link = { type = "afpacket", device = "veth7", promiscuous = false }

[[interface]]
name = "eth1"
mac = "02:00:00:00:00:02"
link = { type = "pcap", in = "rx.pcap", out = "/abs/tx.pcap" }

[neighbors]
"198.18.0.2" = "02:aa:bb:cc:dd:ee"

[firewall]
rules = "fw.rules"
heads = ["in", "out", "in"]
"""
    cfg = parse_config(text, "r.toml", base_dir=tmp_path)
    assert cfg.router_options == {"icmp_rate": 10.0, "arp_hold": 4}
    link0 = cfg.interfaces[0].link
    assert link0 is not None and (link0.type, link0.device, link0.promiscuous) == (
        "afpacket",
        "veth7",
        False,
    )
    link1 = cfg.interfaces[1].link
    assert link1 is not None
    assert (link1.pcap_in, link1.pcap_out) == (tmp_path / "rx.pcap", Path("/abs/tx.pcap"))
    assert cfg.neighbors == ((0, ip("198.18.0.2"), bytes.fromhex("02aabbccddee")),)
    assert cfg.rules_file == tmp_path / "fw.rules"
    assert cfg.firewall_heads == ("in", "out")


@pytest.mark.parametrize(
    ("extra", "key", "problem"),
    [
        ("[interface_]\nx = 1", "interface_", "unknown key"),
        ('[routes]\n"10.0.0.0/8" = "via 10.1.1.1"', 'routes."10.0.0.0/8"', "no connected subnet"),
        ('[routes]\n"10.0.0.1/8" = "dev eth0"', 'routes."10.0.0.1/8"', "host bits"),
        (
            '[routes]\n"10.0.0.0/8" = "dev eth9"',
            'routes."10.0.0.0/8"',
            "no interface called 'eth9'",
        ),
        ('[routes]\n"10.0.0.0/8" = "through eth0"', 'routes."10.0.0.0/8"', "expected 'via"),
        (
            '[routes]\n"10.0.0.0/8" = "via 198.18.0.2 dev eth1"',
            'routes."10.0.0.0/8"',
            "not in a subnet of eth1",
        ),
        ("[routes]\ntabel = 'x'", "routes.tabel", "unknown key"),
        ("[routes]\nalgorithm = 'btree'", "routes.algorithm", "'btree'"),
        ("[routes]\ntable = 't'\ntable_map = 'as'", "routes.table_map", "'as'"),
        ("[routes]\ntable = 't'", "routes.hash_over", "non-empty array"),
        ("[routes]\nhash_over = ['dev eth0']", "routes.hash_over", "only used with routes.table"),
        ('[neighbors]\n"198.18.0.2" = "zz"', 'neighbors."198.18.0.2"', "not a MAC"),
        ('[neighbors]\n"192.0.2.2" = "02:00:00:00:00:09"', 'neighbors."192.0.2.2"', "no connected"),
        ("[firewall]\nheads = ['in']", "firewall.rules", "missing"),
        ("[firewall]\nrules = 'f'\nheads = ['sideways']", "firewall.heads[0]", "'sideways'"),
        ("[router]\nicmp_burst = 'many'", "router.icmp_burst", "must be an integer"),
        ("[router]\nicmp_rates = 1", "router.icmp_rates", "unknown key"),
    ],
)
def test_errors_name_file_key_and_problem(extra: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + extra, "site/r.toml")
    err = info.value
    assert err.file == "site/r.toml" and err.key == key, str(err)
    assert problem in err.problem, str(err)
    assert str(err).startswith(f"site/r.toml: {key}: ")


@pytest.mark.parametrize(
    ("field", "value", "key", "problem"),
    [
        ("mtu", "9", "interface[1].mtu", "outside 68..65535"),
        ("mtu", "'big'", "interface[1].mtu", "must be an integer"),
        ("mac", "'02:00:00:00:00'", "interface[1].mac", "not a MAC"),
        ("addresses", "['198.18.1.1']", "interface[1].addresses[0]", "prefix length"),
        ("addresses", "['198.18.1.300/24']", "interface[1].addresses[0]", "not an address"),
        ("addresses", "['198.18.0.1/24']", "interface[1].addresses[0]", "already on interface[0]"),
        ("name", "'eth0'", "interface[1].name", "already interface[0]"),
        ("speed", "10", "interface[1].speed", "unknown key"),
        ("link", "{ type = 'carrier-pigeon' }", "interface[1].link.type", "'carrier-pigeon'"),
        ("link", "{ type = 'afpacket' }", "interface[1].link.device", "missing"),
        (
            "link",
            "{ type = 'tap', device = 'x', promiscuous = true }",
            "interface[1].link.promiscuous",
            "unknown key",
        ),
    ],
)
def test_interface_errors(field: str, value: str, key: str, problem: str) -> None:
    second = {
        "name": "'eth1'",
        "mac": "'02:00:00:00:00:02'",
        "addresses": "['198.18.1.1/24']",
    }
    second[field] = value
    text = (
        '[[interface]]\nname = "eth0"\nmac = "02:00:00:00:00:01"\naddresses = ["198.18.0.1/24"]\n'
        "[[interface]]\n" + "".join(f"{k} = {v}\n" for k, v in second.items())
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, "r.toml")
    assert info.value.key == key, str(info.value)
    assert problem in info.value.problem, str(info.value)


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match=r"r\.toml: not valid TOML"):
        parse_config("[[interface]\n", "r.toml")
    with pytest.raises(ConfigError, match=r"r\.toml: interface: missing"):
        parse_config("[routes]\n", "r.toml")


def test_bad_next_hop_value_in_table(tmp_path: Path) -> None:
    _write_table(tmp_path / "t.txt.gz", ["1.0.0.0/24\tAS13335"])
    (tmp_path / "r.toml").write_text(BASE + '[routes]\ntable = "t.txt.gz"\ntable_map = "nexthop"\n')
    # The route loader checks next hops itself now, so the error names the line too.
    with pytest.raises(
        RouteFileError, match=r"t\.txt\.gz: line 1: next hop 'AS13335' is not an IPv4 address"
    ):
        build_table(load_config(tmp_path / "r.toml"))


def test_bundled_default_config_is_valid() -> None:
    cfg = load_config(default_config_path())
    assert [i.name for i in cfg.ifaces] == ["eth0", "eth1", "eth2"]
    assert cfg.table_file is not None and cfg.table_file.exists()
    assert cfg.rules_file is not None and cfg.rules_file.exists()
    ruleset = load_ruleset(cfg)
    assert ruleset is not None and len(ruleset.rules) > 1


def _afpacket(link: str, mtu: int = 1500) -> str:
    return (
        f'[[interface]]\nname = "eth0"\nmac = "02:00:00:00:00:01"\nmtu = {mtu}\n'
        f'link = {{ type = "afpacket", device = "veth0"{link} }}\n'
    )


def test_afpacket_links_get_packet_rings_unless_told_not_to() -> None:
    from netfast.link.ring import RingConfig

    def ring(link: str, mtu: int = 1500) -> RingConfig | None:
        lc = parse_config(_afpacket(link, mtu), "r.toml").interfaces[0].link
        assert lc is not None
        return lc.ring

    assert ring("") == RingConfig() == ring(", ring = true")
    assert ring(", ring = false") is None
    assert ring(", ring = { block_count = 32, qdisc_bypass = false }") == RingConfig(
        block_count=32, qdisc_bypass=False
    )
    assert ring(", ring = { tx_frame_size = 9088 }", mtu=9000) == RingConfig(tx_frame_size=9088)
    text = '[[interface]]\nname = "t"\nmac = "02:00:00:00:00:01"\n'
    tap = parse_config(text + 'link = { type = "tap", device = "x" }\n').interfaces[0].link
    assert tap is not None and tap.ring is None


@pytest.mark.parametrize(
    ("link", "mtu", "key", "problem"),
    [
        (", ring = 1", 1500, "interface[0].link.ring", "must be true, false or a table"),
        (", ring = { blocks = 4 }", 1500, "interface[0].link.ring.blocks", "unknown key"),
        (", ring = { block_size = 5000 }", 1500, "interface[0].link.ring.block_size", "page"),
        (
            ", ring = { block_size = 4096 }",
            9000,
            "interface[0].link.ring.block_size",
            "cannot hold one 9018-byte frame",
        ),
        (", ring = { block_count = 0 }", 1500, "interface[0].link.ring.block_count", "outside"),
        (", ring = { retire_ms = 'soon' }", 1500, "interface[0].link.ring.retire_ms", "integer"),
        (
            ", ring = { tx_frame_size = 2048 }",
            9000,
            "interface[0].link.ring.tx_frame_size",
            "from 9066",
        ),
        (", ring = { tx_frame_size = 2050 }", 1500, "interface[0].link.ring.tx_frame_size", "16"),
        (", ring = { tx_frames = 0 }", 1500, "interface[0].link.ring.tx_frames", "outside"),
        (
            ", ring = { qdisc_bypass = 'yes' }",
            1500,
            "interface[0].link.ring.qdisc_bypass",
            "true or false",
        ),
    ],
)
def test_ring_errors_name_file_key_and_problem(link: str, mtu: int, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_afpacket(link, mtu), "site/r.toml")
    err = info.value
    assert (err.file, err.key) == ("site/r.toml", key), str(err)
    assert problem in err.problem, str(err)
