"""The TOML configuration of a node, read into frozen dataclasses and checked at start.

Every error is a :class:`~l2tpfast.errors.ConfigError` naming the key, the value
and the fix. The control-plane keys (``[tunnel]``, ``[[profile]]``, ``[limits]``)
map one to one onto :class:`~l2tpfast.control.settings.TunnelSettings` and
:class:`~l2tpfast.control.settings.EndpointSettings`.

Example::

    [node]
    role = "lns"                 # "lns" or "lac"
    listen = "0.0.0.0"           # wildcard: replies leave from the address the peer used
    port = 1701
    control_socket = "/run/l2tpfast/l2tpfast.sock"

    [tunnel]
    host_name = "lns1"
    secret = "s3cret"            # tunnel authentication (RFC 2661 5.1.1)
    hide_avps = true             # RFC 2661 4.3
    hello_interval = 60
    max_retries = 5

    [limits]
    max_tunnels = 1000
    max_tunnels_per_peer = 16
    max_sessions = 100000

    [[profile]]
    name = "apple"
    match = ["198.51.100.0/24", "host:iPhone"]
    result_code_byte_order = "little"

    [lac]                        # role = "lac" only
    lns = "192.0.2.2"
    lns_port = 1701
    sessions = 1                 # calls placed at start (ICRQ)
"""

from __future__ import annotations

import dataclasses
import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l2tpfast.control.settings import ByteOrder, EndpointSettings, PeerProfile, TunnelSettings
from l2tpfast.errors import ConfigError
from l2tpfast.wire.constants import DEFAULT_PORT, AvpType

_TUNNEL_FIELDS = {f.name: f for f in dataclasses.fields(TunnelSettings)}


@dataclass(frozen=True, slots=True)
class LacConfig:
    lns: str
    lns_port: int = DEFAULT_PORT
    sessions: int = 1


@dataclass(frozen=True, slots=True)
class NodeConfig:
    role: str = "lns"
    listen: str = "0.0.0.0"
    #: RFC 2661 8.1: 1701; a LAC binds it as source port too (Windows does, IPsec policies expect it).
    port: int = DEFAULT_PORT
    control_socket: str | None = None
    log_level: str = "info"
    endpoint: EndpointSettings = field(default_factory=EndpointSettings)
    lac: LacConfig | None = None


def _expect(key: str, value: Any, kind: type | tuple[type, ...], hint: str = "") -> Any:
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise ConfigError(key, f"{value!r} is a boolean, not a number", hint)
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(key, f"{value!r} is not a {names}", hint)
    return value


def _unknown(section: str, table: dict[str, Any], known: set[str]) -> None:
    for key in table:
        if key not in known:
            raise ConfigError(f"{section}.{key}", "unknown key", f"known keys: {', '.join(sorted(known))}")


def _tunnel_value(key: str, name: str, value: Any) -> Any:
    """Convert one TOML value to the TunnelSettings field ``name``."""
    if name == "secret":
        _expect(key, value, str, 'a string: secret = "..."')
        if not value:
            raise ConfigError(key, "is empty", "remove the key to run without tunnel authentication")
        return value.encode()
    if name == "result_code_byte_order":
        try:
            return ByteOrder(_expect(key, value, str))
        except ValueError:
            raise ConfigError(key, f"{value!r} is not big, little or auto") from None
    if name == "omit_avps":
        out = set()
        for item in _expect(key, value, list, 'a list of AVP names, e.g. ["VENDOR_NAME"]'):
            try:
                out.add(AvpType[str(item).upper()])
            except KeyError:
                raise ConfigError(
                    key, f"{item!r} is not an AVP name", "use names like FIRMWARE_REVISION"
                ) from None
        return frozenset(out)
    default = _TUNNEL_FIELDS[name].default
    if isinstance(default, bool):
        return _expect(key, value, bool, "true or false")
    if isinstance(default, float):
        return float(_expect(key, value, (int, float), "a number of seconds"))
    if isinstance(default, int):
        return _expect(key, value, int, "an integer")
    if isinstance(default, str):
        return _expect(key, value, str, "a string")
    return value


def _tunnel_overrides(section: str, table: dict[str, Any], skip: set[str] = frozenset()) -> dict[str, Any]:  # type: ignore[assignment]
    out = {}
    for key, value in table.items():
        if key in skip:
            continue
        if key not in _TUNNEL_FIELDS:
            raise ConfigError(
                f"{section}.{key}", "unknown key", f"tunnel settings: {', '.join(sorted(_TUNNEL_FIELDS))}"
            )
        out[key] = _tunnel_value(f"{section}.{key}", key, value)
    return out


def _profile(index: int, table: dict[str, Any]) -> PeerProfile:
    section = f"profile[{index}]"
    name = _expect(f"{section}.name", table.get("name", f"profile{index}"), str)
    matches = _expect(f"{section}.match", table.get("match", []), list, 'e.g. ["192.0.2.0/24", "host:lac1"]')
    if not matches:
        raise ConfigError(
            f"{section}.match", "is missing or empty", 'list addresses, networks or "host:NAME"'
        )
    networks = []
    hosts = []
    for item in matches:
        _expect(f"{section}.match", item, str)
        if item.startswith("host:"):
            hosts.append(item[5:])
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(
                f"{section}.match", f"{item!r} is not an address or network", 'or use "host:NAME"'
            ) from None
    overrides = _tunnel_overrides(section, table, skip={"name", "match"})
    return PeerProfile(name, overrides, tuple(networks), tuple(hosts))


def parse_config(data: dict[str, Any]) -> NodeConfig:
    """Check a parsed TOML document and build the node's settings."""
    _unknown("", data, {"node", "tunnel", "limits", "profile", "lac"})
    node = _expect("node", data.get("node", {}), dict)
    _unknown("node", node, {"role", "listen", "port", "control_socket", "log_level"})
    role = _expect("node.role", node.get("role", "lns"), str)
    if role not in ("lns", "lac"):
        raise ConfigError("node.role", f"{role!r} is not lns or lac")
    listen = _expect("node.listen", node.get("listen", "0.0.0.0"), str)
    try:
        ipaddress.ip_address(listen)
    except ValueError:
        raise ConfigError(
            "node.listen", f"{listen!r} is not an IP address", 'e.g. "0.0.0.0" or "::"'
        ) from None
    port = _expect("node.port", node.get("port", DEFAULT_PORT), int)
    if not 0 <= port <= 0xFFFF:
        raise ConfigError("node.port", f"{port} is out of 0..65535")
    log_level = _expect("node.log_level", node.get("log_level", "info"), str)
    if log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError("node.log_level", f"{log_level!r}", "one of debug, info, warning, error")
    tunnel_table = _expect("tunnel", data.get("tunnel", {}), dict)
    tunnel = TunnelSettings(**_tunnel_overrides("tunnel", tunnel_table))
    limits = _expect("limits", data.get("limits", {}), dict)
    _unknown("limits", limits, {"max_tunnels", "max_tunnels_per_peer", "max_sessions", "accept_tunnels"})
    limit_values = {}
    for key in ("max_tunnels", "max_tunnels_per_peer", "max_sessions"):
        if key in limits:
            value = _expect(f"limits.{key}", limits[key], int)
            if value < 0:
                raise ConfigError(f"limits.{key}", f"{value} is negative", "0 means no limit")
            limit_values[key] = value
    accept = _expect("limits.accept_tunnels", limits.get("accept_tunnels", role == "lns"), bool)
    profiles = tuple(
        _profile(i, _expect(f"profile[{i}]", t, dict))
        for i, t in enumerate(_expect("profile", data.get("profile", []), list))
    )
    lac = None
    if role == "lac":
        table = _expect("lac", data.get("lac"), dict, "a LAC needs a [lac] section with lns = ADDRESS")
        _unknown("lac", table, {"lns", "lns_port", "sessions"})
        lns = _expect("lac.lns", table.get("lns"), str, 'the LNS address, e.g. lns = "192.0.2.2"')
        try:
            ipaddress.ip_address(lns)
        except ValueError:
            raise ConfigError("lac.lns", f"{lns!r} is not an IP address") from None
        sessions = _expect("lac.sessions", table.get("sessions", 1), int)
        if sessions < 0:
            raise ConfigError("lac.sessions", f"{sessions} is negative")
        lac = LacConfig(lns, _expect("lac.lns_port", table.get("lns_port", DEFAULT_PORT), int), sessions)
    elif "lac" in data:
        raise ConfigError("lac", 'is only for role = "lac"', "remove it or set node.role")
    endpoint = EndpointSettings(tunnel=tunnel, profiles=profiles, accept_tunnels=accept, **limit_values)
    control_socket = node.get("control_socket")
    if control_socket is not None:
        _expect("node.control_socket", control_socket, str)
    return NodeConfig(role, listen, port, control_socket, log_level, endpoint, lac)


def load_config(path: str | Path) -> NodeConfig:
    """Read and check a TOML configuration file."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None
    return parse_config(data)
