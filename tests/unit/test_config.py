"""The TOML configuration: a good file loads; each kind of mistake names its key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from l2tpfast.config import load_config, parse_config
from l2tpfast.control.settings import ByteOrder
from l2tpfast.errors import ConfigError
from l2tpfast.wire.constants import AvpType

GOOD = """
[node]
role = "lns"
listen = "0.0.0.0"
port = 1701

[tunnel]
host_name = "lns1"
secret = "s3cret"
hide_avps = true
hello_interval = 30
max_retries = 7
omit_avps = ["vendor_name"]

[limits]
max_tunnels = 10
max_tunnels_per_peer = 2

[[profile]]
name = "apple"
match = ["198.51.100.0/24", "host:iPhone"]
result_code_byte_order = "little"
hello_interval = 0
"""


def test_good_config(tmp_path: Path) -> None:
    path = tmp_path / "lns.toml"
    path.write_text(GOOD)
    config = load_config(path)
    t = config.endpoint.tunnel
    assert (t.host_name, t.secret, t.hide_avps, t.hello_interval, t.max_retries) == (
        "lns1",
        b"s3cret",
        True,
        30.0,
        7,
    )
    assert t.omit_avps == frozenset({AvpType.VENDOR_NAME})
    assert config.endpoint.max_tunnels == 10 and config.endpoint.max_tunnels_per_peer == 2
    apple = config.endpoint.for_peer("198.51.100.7")
    assert apple.result_code_byte_order is ByteOrder.LITTLE and apple.hello_interval == 0
    assert config.endpoint.for_peer("192.0.2.1", "iPhone").result_code_byte_order is ByteOrder.LITTLE
    assert config.endpoint.for_peer("192.0.2.1").result_code_byte_order is ByteOrder.AUTO


@pytest.mark.parametrize(
    ("doc", "key", "words"),
    [
        ({"node": {"role": "bras"}}, "node.role", "not lns or lac"),
        ({"node": {"listen": "localhost"}}, "node.listen", "not an IP address"),
        ({"node": {"port": 70000}}, "node.port", "out of 0..65535"),
        ({"node": {"colour": "red"}}, "node.colour", "unknown key"),
        ({"tunnel": {"hello_interval": "often"}}, "tunnel.hello_interval", "not a"),
        ({"tunnel": {"secret": ""}}, "tunnel.secret", "empty"),
        ({"tunnel": {"hide_avps": True}}, "hide_avps", "needs a tunnel secret"),
        ({"tunnel": {"retransmit_cap": 4}}, "retransmit_cap", "cap >= 8"),
        ({"tunnel": {"omit_avps": ["HOST_NAME"]}}, "omit_avps", "cannot be left out"),
        ({"tunnel": {"omit_avps": ["NOPE"]}}, "tunnel.omit_avps", "not an AVP name"),
        ({"tunnel": {"bogus": 1}}, "tunnel.bogus", "unknown key"),
        ({"limits": {"max_tunnels": -1}}, "limits.max_tunnels", "negative"),
        ({"profile": [{"name": "x", "match": []}]}, "profile[0].match", "missing or empty"),
        ({"profile": [{"name": "x", "match": ["nowhere"]}]}, "profile[0].match", "not an address"),
        (
            {"profile": [{"name": "x", "match": ["192.0.2.1"], "max_retries": "5"}]},
            "profile[0].max_retries",
            "not a",
        ),
        ({"node": {"role": "lac"}}, "lac", "needs a [lac] section"),
        ({"node": {"role": "lac"}, "lac": {"lns": "lns.example"}}, "lac.lns", "not an IP address"),
        ({"lac": {"lns": "192.0.2.2"}}, "lac", "only for role"),
    ],
)
def test_each_error_names_its_key(doc: dict[str, object], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(doc)
    assert info.value.key.endswith(key), str(info.value)
    assert words in str(info.value)


def test_unreadable_and_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[node\nrole = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
