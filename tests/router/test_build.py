"""netfast.router.build: the files a config names are checked at build time, not parse time, and
a BuiltRouter closes the links it opened, whatever way its run ends."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest
from tests.link.test_pcap_link_hostile import ROUTER, SAMPLE

from netfast.link.pcap import read_capture
from netfast.router.build import build_router, check_files
from netfast.router.config import ConfigError, parse_config


def _config(out: str = "eth1.pcap") -> str:
    links = ROUTER.replace(
        'addresses = ["145.254.160.1/24"]\n',
        f'addresses = ["145.254.160.1/24"]\nlink = {{ type = "pcap", in = "{SAMPLE}" }}\n',
    ).replace(
        'addresses = ["198.18.1.1/24"]\n',
        f'addresses = ["198.18.1.1/24"]\nlink = {{ type = "pcap", out = "{out}" }}\n',
    )
    assert links != ROUTER
    return links


def test_config_is_frozen_values(tmp_path: Path) -> None:
    cfg = parse_config(_config(), "r.toml", base_dir=tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.rules_file = tmp_path  # type: ignore[misc]
    assert isinstance(cfg.interfaces, tuple) and isinstance(cfg.neighbors, tuple)


def test_pcap_output_that_is_a_directory_is_refused_before_the_build(tmp_path: Path) -> None:
    (tmp_path / "eth1.pcap").mkdir()
    # Parsing looks at no file; checking the build's files does.
    cfg = parse_config(_config(), "r.toml", base_dir=tmp_path)
    with pytest.raises(ConfigError) as info:
        check_files(cfg)
    assert info.value.key == "interface[1].link.out" and "is a directory" in str(info.value)
    with pytest.raises(ConfigError):
        build_router(cfg, vector=False)


@pytest.mark.parametrize("vector", [False, True])
def test_run_live_over_pcap_links_then_close(tmp_path: Path, vector: bool) -> None:
    cfg = parse_config(_config(), "r.toml", base_dir=tmp_path)
    built = build_router(cfg, vector=vector)
    assert built.route_stats == {"connected": 2, "static": 1}
    with built:
        links = built.open_links(("pcap",))
        assert sorted(links) == [0, 1] and built.links is links
        summary = built.run_live(threading.Event(), duration=5.0, max_packets=10)
    assert built.links == {}
    assert summary.stopped_by == "max_packets"
    stats = summary.stats
    assert stats.frames_in >= 10
    assert stats.vector_frames + stats.scalar_frames == stats.frames_in
    assert (stats.vector_frames > 0) == vector
    # The writer link was closed: its capture is complete and holds what went out on eth1.
    written = list(read_capture(tmp_path / "eth1.pcap"))
    assert len(written) == stats.out[1] > 0


def test_close_runs_when_the_run_raises(tmp_path: Path) -> None:
    cfg = parse_config(_config(), "r.toml", base_dir=tmp_path)
    built = build_router(cfg, vector=False)
    with pytest.raises(ValueError, match="batch_size"), built:
        built.open_links(("pcap",))
        built.run_live(threading.Event(), batch_size=0)
    assert built.links == {}
    assert (tmp_path / "eth1.pcap").exists()
