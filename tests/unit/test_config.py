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
        ({"node": {"port": 70000}}, "node.port", "out of range"),
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


# --- [ppp] and [lns]: PPP termination (issue 5) ----------------------------------------------

PPP_LNS: dict[str, object] = {
    "node": {"role": "lns"},
    "dataplane": {"tun": "l2tp%d"},
    "ppp": {"auth": ["mschapv2", "chap"], "echo_interval": 5, "echo_failure": 4, "ipv6": True},
    "lns": {
        "pool": ["10.100.0.0/16", "10.101.0.10-10.101.0.20"],
        "local_address": "10.100.0.1",
        "dns": ["192.0.2.53"],
        "users_file": "/etc/l2tpfast/users",
        "duplicate_logins": False,
    },
}


def _with(doc: dict[str, object], section: str, **values: object) -> dict[str, object]:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in doc.items()}
    table = dict(out.get(section, {}))  # type: ignore[call-overload]
    for key, value in values.items():
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    out[section] = table
    return out


def test_ppp_lns_config_loads() -> None:
    from ipaddress import IPv4Address

    from l2tpfast.ppp.constants import AuthMethod

    config = parse_config(PPP_LNS)
    assert config.ppp is not None and config.lns is not None
    assert config.ppp.auth == (AuthMethod.MSCHAPV2, AuthMethod.CHAP_MD5)
    assert config.ppp.echo_interval == 5.0 and config.ppp.ipv6
    assert config.lns.local_address == IPv4Address("10.100.0.1")
    assert config.lns.dns == (IPv4Address("192.0.2.53"),)
    assert not config.lns.duplicate_logins


def test_ppp_lac_config_has_credentials_and_hides_the_password() -> None:
    doc = {
        "node": {"role": "lac"},
        "lac": {"lns": "192.0.2.2", "sessions": 3},
        "dataplane": {"tun": "l2tp%d"},
        "ppp": {"username": "u", "password": "p4ss"},
    }
    config = parse_config(doc)
    assert config.ppp is not None and config.ppp.username == "u" and config.ppp.password == "p4ss"
    assert "p4ss" not in repr(config)


@pytest.mark.parametrize(
    ("doc", "key", "words"),
    [
        (_with(PPP_LNS, "ppp", auth=["md5"]), "ppp.auth", "mschapv2"),
        (_with(PPP_LNS, "ppp", echo_interval=-1), "ppp.echo_interval", "out of range"),
        (_with(PPP_LNS, "ppp", mru=100), "ppp.mru", "576"),
        (_with(PPP_LNS, "ppp", proxy="maybe"), "ppp.proxy", "renegotiate"),
        (_with(PPP_LNS, "ppp", username="x"), "ppp.username", "LAC"),
        (_with(PPP_LNS, "ppp", colour="red"), "ppp.colour", "known keys"),
        (_with(PPP_LNS, "lns", pool=["10.0.0.0/33"]), "lns.pool", "prefix or range"),
        (_with(PPP_LNS, "lns", pool=None), "lns.pool", "needs addresses"),
        (_with(PPP_LNS, "lns", dns=["a.b.c.d"]), "lns.dns", "IPv4"),
        (_with(PPP_LNS, "lns", dns=["192.0.2.1", "192.0.2.2", "192.0.2.3"]), "lns.dns", "two"),
        (_with(PPP_LNS, "lns", users_file=None), "lns.users_file", "auth = []"),
        (_with(PPP_LNS, "dataplane", tun=""), "ppp", "TUN"),
        ({k: v for k, v in PPP_LNS.items() if k != "ppp"}, "lns", "[ppp]"),
        (_with(PPP_LNS, "lns", ipv6_pool="2001:db8::/96"), "lns.ipv6_pool", "/64"),
        (_with(PPP_LNS, "lns", ipv6_pool="10.0.0.0/8"), "lns.ipv6_pool", "IPv6 prefix"),
        (
            _with(_with(PPP_LNS, "ppp", ipv6=False), "lns", ipv6_pool="2001:db8::/48"),
            "lns.ipv6_pool",
            "ipv6 = true",
        ),
        (_with(PPP_LNS, "lns", ipv6_dns=["192.0.2.1"]), "lns.ipv6_dns", "IPv6"),
        (
            {
                "node": {"role": "lac"},
                "lac": {"lns": "192.0.2.2", "session_tun": "ppp%d"},
                "dataplane": {"tun": "t"},
            },
            "lac.session_tun",
            "[ppp]",
        ),
        (
            {"node": {"role": "lac"}, "lac": {"lns": "192.0.2.2", "session_tun": "x" * 16}},
            "lac.session_tun",
            "15",
        ),
    ],
)
def test_ppp_config_errors_name_the_key(doc: dict[str, object], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(doc)
    assert err.value.key == key, str(err.value)
    assert words in str(err.value), str(err.value)


def test_no_auth_needs_no_users_file() -> None:
    doc = _with(_with(PPP_LNS, "ppp", auth=[]), "lns", users_file=None)
    config = parse_config(doc)
    assert config.ppp is not None and config.ppp.auth == ()
