"""The configuration reference (l2tpfast.schema), errors per section, [log]/[metrics]/[radius], reload."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from l2tpfast import schema
from l2tpfast.config import (
    DataplaneConfig,
    LacConfig,
    LnsConfig,
    PppConfig,
    load_config,
    parse_config,
)
from l2tpfast.control.settings import TunnelSettings
from l2tpfast.errors import ConfigError, ConfigErrors
from l2tpfast.reload import reload_plan

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"

LNS = """
[node]
role = "lns"
[dataplane]
tun = "l2tp%d"
[ppp]
auth = ["pap"]
[lns]
pool = ["10.100.0.0/24"]
[radius]
servers = ["192.0.2.10", "192.0.2.11:11812", "[2001:db8::1]:1812"]
secret = "radsecret"
timeout = 1
retries = 2
dae_port = 3799
"""


def test_reference_doc_is_current() -> None:
    assert DOC.read_text() == schema.render(), "run: python -m l2tpfast.schema > docs/config.md"


@pytest.mark.parametrize(
    ("section", "fields", "extra"),
    [
        ("tunnel", dataclasses.fields(TunnelSettings), set()),
        ("ppp", dataclasses.fields(PppConfig), set()),
        ("lns", dataclasses.fields(LnsConfig), set()),
        ("lac", dataclasses.fields(LacConfig), set()),
        ("dataplane", dataclasses.fields(DataplaneConfig), {"enabled"}),
    ],
)
def test_reference_lists_every_setting(
    section: str, fields: tuple[dataclasses.Field[object], ...], extra: set[str]
) -> None:
    assert schema.known(section) == {f.name for f in fields} | extra


def test_every_documented_key_is_accepted() -> None:
    # The parser takes its known keys from the table: a key in the doc is never "unknown".
    for section in schema.SECTIONS:
        if section.name in ("profile", "lac", "radius"):
            continue
        for key in section.keys:
            try:
                parse_config({section.name: {key.name: object()}})
            except ConfigError as exc:
                assert "unknown key" not in str(exc), (section.name, key.name)


BROKEN_EVERYWHERE = """
[node]
port = 70000
[log]
format = "xml"
[metrics]
enabled = true
port = -1
[tunnel]
hello_interval = "soon"
[limits]
max_tunnels = -3
[[profile]]
name = "p"
[dataplane]
batch = 0
[ppp]
echo_failure = 0
[lns]
dns = ["not-an-address"]
[radius]
servers = ["radius.example"]
secret = "x"
"""


def test_an_error_in_each_section_gives_one_message_each(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(BROKEN_EVERYWHERE)
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    keys = [e.key for e in info.value.errors]
    assert keys == [
        "node.port",
        "log.format",
        "metrics.port",
        "tunnel.hello_interval",
        "limits.max_tunnels",
        "profile[0].match",
        "dataplane.batch",
        "ppp.echo_failure",
        "lns.dns",
        "radius.servers",
    ]
    text = str(info.value)
    for needle in ("70000", "'xml'", "'soon'", "-3", "'not-an-address'", "'radius.example'"):
        assert needle in text  # the value
    assert all(e.hint for e in info.value.errors)  # and the fix


def test_check_config_prints_each_error_and_run_does_not_start(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(BROKEN_EVERYWHERE)
    for args in (["check-config", str(path)], ["run", "-c", str(path)]):
        done = subprocess.run(
            [sys.executable, "-m", "l2tpfast", *args], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2, done
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 10, done.stderr
        assert all(line.startswith(f"l2tpfast: config error: {path}: ") for line in lines)
        assert "listening" not in done.stderr


def test_radius_section() -> None:
    config = parse_config(_toml(LNS))
    radius = config.radius
    assert radius is not None
    assert radius.servers == (("192.0.2.10", 1812), ("192.0.2.11", 11812), ("2001:db8::1", 1812))
    assert radius.accounting_servers == (("192.0.2.10", 1813), ("192.0.2.11", 1813), ("2001:db8::1", 1813))
    assert (radius.timeout, radius.retries, radius.dae_port) == (1.0, 2, 3799)
    assert radius.dae_clients == ("192.0.2.10", "192.0.2.11", "2001:db8::1")
    assert "radsecret" not in repr(config)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ("secret = ''", "radius.secret"),
        ("servers = []", "radius.servers"),
        ('servers = ["192.0.2.1:99999"]', "radius.servers"),
        ("retries = 11", "radius.retries"),
        ('dae_clients = ["nobody"]', "radius.dae_clients"),
        ("bogus = 1", "radius.bogus"),
    ],
)
def test_radius_errors(change: str, key: str) -> None:
    text = LNS.replace('secret = "radsecret"', 'secret = "radsecret"\n' + change)
    name = change.split()[0]
    if name in LNS:
        text = (
            "\n".join(line for line in text.splitlines() if not line.startswith(name + " ")) + "\n" + change
        )
    with pytest.raises(ConfigError) as info:
        parse_config(_toml(text))
    assert info.value.key == key


def test_radius_and_users_file_conflict() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_toml(LNS.replace("[lns]", '[lns]\nusers_file = "/etc/users"')))
    assert info.value.key == "lns.users_file"


def test_log_and_metrics_sections() -> None:
    config = parse_config(
        _toml(
            '[log]\nlevel = "debug"\nformat = "json"\ncontrol_pcap = "/tmp/c.pcap"\n'
            "[metrics]\nenabled = true\n"
        )
    )
    assert (config.log.level, config.log.format, config.log.control_pcap) == ("debug", "json", "/tmp/c.pcap")
    assert config.metrics is not None and (config.metrics.listen, config.metrics.port) == ("127.0.0.1", 9612)
    assert parse_config({}).metrics is None  # off by default
    assert parse_config(_toml('[node]\nlog_level = "warning"')).log.level == "warning"


def test_reload_plan_applies_reloadable_keys_and_keeps_the_rest(tmp_path: Path) -> None:
    running = load_config(_write(tmp_path, "a.toml", LNS))
    changed = LNS.replace("timeout = 1", "timeout = 2").replace('role = "lns"', 'role = "lns"\nport = 1702')
    changed = changed.replace('pool = ["10.100.0.0/24"]', 'pool = ["10.100.0.0/24"]\ndns = ["192.0.2.53"]')
    changed += '\n[log]\nlevel = "debug"\n'
    merged, applied, restart = reload_plan(running, load_config(_write(tmp_path, "b.toml", changed)))
    assert applied == ["lns.dns", "log.level", "radius.timeout"]
    assert restart == ["node.port"]
    assert merged.port == running.port == 1701  # kept
    assert merged.radius is not None and merged.radius.timeout == 2.0
    assert merged.lns is not None and [str(a) for a in merged.lns.dns] == ["192.0.2.53"]
    assert merged.log.level == "debug"


def test_reload_plan_a_new_section_needs_a_restart(tmp_path: Path) -> None:
    base = LNS.split("[radius]")[0]
    base = base.replace("[lns]", "[lns]\nusers_file = '/dev/null'")
    running = load_config(_write(tmp_path, "a.toml", base))
    fresh = load_config(_write(tmp_path, "b.toml", base + "\n[metrics]\nenabled = true\n"))
    merged, applied, restart = reload_plan(running, fresh)
    assert (applied, restart, merged.metrics) == ([], ["[metrics]"], None)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _toml(text: str) -> dict[str, object]:
    import tomllib

    return tomllib.loads(text)


def test_named_pools_for_framed_pool() -> None:
    config = parse_config(_toml(LNS + '[lns.pools]\ngold = ["10.200.0.0/24"]\nsilver = ["10.201.0.0/24"]\n'))
    assert config.lns is not None
    assert config.lns.pools == (("gold", ("10.200.0.0/24",)), ("silver", ("10.201.0.0/24",)))
    with pytest.raises(ConfigError) as info:
        parse_config(_toml(LNS + '[lns.pools]\ngold = ["10.100.0.128/25"]\n'))
    assert info.value.key == "lns.pools.gold" and "overlaps lns.pool" in str(info.value)
    with pytest.raises(ConfigError) as info:
        parse_config(_toml(LNS + '[lns.pools]\ngold = "10.200.0.0/24"\n'))
    assert info.value.key == "lns.pools.gold"
