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

    [ppp]                        # terminate PPP in each session (needs [dataplane] with a tun)
    auth = ["mschapv2", "chap", "pap"]   # LNS: methods asked of subscribers, preferred first
    echo_interval = 10           # LCP keepalive (RFC 1661 5.8); 0 turns it off
    echo_failure = 3
    username = "user"            # LAC: the credentials its PPP client sends
    password = "secret"

    [lns]                        # role = "lns" with [ppp]: subscribers
    pool = ["10.100.0.0/16"]     # IPCP addresses (RFC 1332)
    local_address = "10.100.0.1" # the LNS's own address on every link
    dns = ["192.0.2.53"]         # RFC 1877
    users_file = "/etc/l2tpfast/users"
    duplicate_logins = true
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
from l2tpfast.ppp.constants import AuthMethod
from l2tpfast.wire.constants import DEFAULT_PORT, AvpType

_TUNNEL_FIELDS = {f.name: f for f in dataclasses.fields(TunnelSettings)}


@dataclass(frozen=True, slots=True)
class LacConfig:
    lns: str
    lns_port: int = DEFAULT_PORT
    sessions: int = 1
    #: With [ppp]: each session gets a TUN device of its own named by this pattern ("ppp%d"),
    #: as pppd's ppp0 (our LAC as a plain L2TP client); unset: all share [dataplane] tun.
    session_tun: str | None = None


AUTH_NAMES = {"pap": AuthMethod.PAP, "chap": AuthMethod.CHAP_MD5, "mschapv2": AuthMethod.MSCHAPV2}


@dataclass(frozen=True, slots=True)
class PppConfig:
    """``[ppp]``: how each session's PPP link negotiates (RFC 1661, 1332, 5072)."""

    mru: int | None = None
    echo_interval: float = 10.0
    echo_failure: int = 3
    restart_timer: float = 3.0
    max_configure: int = 10
    max_failure: int = 5
    ipv6: bool = False
    #: LNS: the methods required of subscribers, most preferred first; () asks for none.
    auth: tuple[AuthMethod, ...] = (AuthMethod.MSCHAPV2, AuthMethod.CHAP_MD5, AuthMethod.PAP)
    #: LNS: "accept" proxied LCP and authentication from the LAC (RFC 2661 4.4.5) or "renegotiate".
    proxy: str = "accept"
    #: LAC: the credentials its PPP client answers with, and whether it asks for DNS servers.
    username: str = ""
    password: str = field(default="", repr=False)
    request_dns: bool = True


@dataclass(frozen=True, slots=True)
class LnsConfig:
    """``[lns]``: what subscribers get (addresses from the pool, DNS) and who may log in."""

    pool: tuple[str, ...] = ()
    local_address: ipaddress.IPv4Address | None = None
    dns: tuple[ipaddress.IPv4Address, ...] = ()
    nbns: tuple[ipaddress.IPv4Address, ...] = ()
    users_file: str | None = None
    duplicate_logins: bool = True
    #: IPv6 (with ``[ppp] ipv6``): one /64 of this pool per subscriber, announced by Router
    #: Advertisement after IPv6CP (RFC 5072, RFC 4861), and DNS servers for it (RFC 8106).
    ipv6_pool: ipaddress.IPv6Network | None = None
    ipv6_dns: tuple[ipaddress.IPv6Address, ...] = ()


@dataclass(frozen=True, slots=True)
class DataplaneConfig:
    """The compiled data plane (``[dataplane]``)."""

    threads: int = 1
    batch: int = 64
    #: TUN device name ("l2tp%d": the kernel numbers it); empty: no TUN, IP goes to the PPP side.
    tun: str = "l2tp%d"
    tun_addresses: tuple[str, ...] = ()
    mtu: int = 1500
    max_sessions: int = 65536
    reorder_window: int = 16
    reorder_timeout: float = 0.1
    #: LNS: our data carries Ns (RFC 2661 5.4: the LNS decides; a LAC follows).
    sequence_data: bool = False
    #: Receive and send buffer of each data-plane socket, octets: the kernel's default (208 KiB)
    #: overflows in a burst while a loop is busy with the TUN device.
    socket_buffer: int = 4 * 1024 * 1024
    #: Packets the TUN device queues for the loop to read (txqueuelen; the kernel's is 500).
    tun_queue: int = 4096


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
    #: "udp" (RFC 2661 8.1) or "ip": L2TP over IP protocol 115, l2tpfast at both ends.
    transport: str = "udp"
    dataplane: DataplaneConfig | None = None
    ppp: PppConfig | None = None
    lns: LnsConfig | None = None


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
    _unknown("", data, {"node", "tunnel", "limits", "profile", "lac", "dataplane", "ppp", "lns"})
    node = _expect("node", data.get("node", {}), dict)
    _unknown("node", node, {"role", "listen", "port", "control_socket", "log_level", "transport"})
    transport = _expect("node.transport", node.get("transport", "udp"), str)
    if transport not in ("udp", "ip"):
        raise ConfigError(
            "node.transport", f"{transport!r} is not udp or ip", "ip: L2TP over IP protocol 115"
        )
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
        _unknown("lac", table, {"lns", "lns_port", "sessions", "session_tun"})
        lns = _expect("lac.lns", table.get("lns"), str, 'the LNS address, e.g. lns = "192.0.2.2"')
        try:
            ipaddress.ip_address(lns)
        except ValueError:
            raise ConfigError("lac.lns", f"{lns!r} is not an IP address") from None
        sessions = _expect("lac.sessions", table.get("sessions", 1), int)
        if sessions < 0:
            raise ConfigError("lac.sessions", f"{sessions} is negative")
        session_tun = table.get("session_tun")
        if session_tun is not None:
            _expect("lac.session_tun", session_tun, str, 'a device name pattern such as "ppp%d"')
            if not 0 < len(session_tun) <= 15:
                raise ConfigError("lac.session_tun", f"{session_tun!r}", '1..15 characters, e.g. "ppp%d"')
        lac = LacConfig(
            lns, _expect("lac.lns_port", table.get("lns_port", DEFAULT_PORT), int), sessions, session_tun
        )
    elif "lac" in data:
        raise ConfigError("lac", 'is only for role = "lac"', "remove it or set node.role")
    endpoint = EndpointSettings(tunnel=tunnel, profiles=profiles, accept_tunnels=accept, **limit_values)
    control_socket = node.get("control_socket")
    if control_socket is not None:
        _expect("node.control_socket", control_socket, str)
    dataplane = _dataplane(data["dataplane"]) if "dataplane" in data else None
    if transport == "ip" and dataplane is not None and dataplane.threads != 1:
        raise ConfigError("dataplane.threads", "L2TP over IP runs one thread", "set threads = 1")
    ppp = _ppp(data["ppp"], role) if "ppp" in data else None
    lns_config = None
    if "lns" in data:
        if role != "lns":
            raise ConfigError("lns", 'is only for role = "lns"', "remove it or set node.role")
        lns_config = _lns(data["lns"])
    if ppp is not None:
        if dataplane is None or not dataplane.tun:
            raise ConfigError(
                "ppp",
                "PPP termination needs the data plane and a TUN device",
                'add [dataplane] with tun = "l2tp%d"',
            )
        if role == "lns" and (lns_config is None or not lns_config.pool):
            raise ConfigError(
                "lns.pool", "an LNS terminating PPP needs addresses", 'add [lns] pool = ["10.100.0.0/16"]'
            )
        if role == "lns" and ppp.auth and (lns_config is None or lns_config.users_file is None):
            raise ConfigError(
                "lns.users_file",
                "authentication is required but there is no users file",
                'set users_file = "/etc/l2tpfast/users", or [ppp] auth = [] to let everyone in',
            )
        if lns_config is not None and lns_config.ipv6_pool is not None and not ppp.ipv6:
            raise ConfigError("lns.ipv6_pool", "IPv6 prefixes without IPv6CP", "set [ppp] ipv6 = true")
    elif lns_config is not None:
        raise ConfigError("lns", "subscriber settings without PPP", "add a [ppp] section")
    if lac is not None and lac.session_tun is not None and ppp is None:
        raise ConfigError(
            "lac.session_tun", "per-session TUN devices carry PPP sessions", "add a [ppp] section"
        )
    return NodeConfig(
        role, listen, port, control_socket, log_level, endpoint, lac, transport, dataplane, ppp, lns_config
    )


def _address_list(key: str, value: Any, version: int = 4) -> tuple[Any, ...]:
    """A list of IPv4 (or, with ``version=6``, IPv6) addresses."""
    kind, example = (
        (ipaddress.IPv4Address, "192.0.2.53") if version == 4 else (ipaddress.IPv6Address, "2001:db8::53")
    )
    out = []
    for v in _expect(key, value, list, f'a list such as ["{example}"]'):
        try:
            out.append(kind(_expect(key, v, str)))
        except ValueError:
            raise ConfigError(key, f"{v!r} is not an IPv{version} address", f'e.g. "{example}"') from None
    return tuple(out)


def _ppp(table: Any, role: str) -> PppConfig:
    _expect("ppp", table, dict)
    _unknown("ppp", table, {f.name for f in dataclasses.fields(PppConfig)})
    values: dict[str, Any] = {}
    if "mru" in table:
        values["mru"] = _expect("ppp.mru", table["mru"], int, "octets, 576..65535 (RFC 1661 6.1)")
        if not 576 <= values["mru"] <= 65535:
            raise ConfigError("ppp.mru", f"{values['mru']} is out of range", "576..65535")
    for name, kind, lo, hi, hint in (
        ("echo_interval", float, 0, 3600, "seconds between LCP Echo-Requests, 0 turns keepalive off"),
        ("echo_failure", int, 1, 100, "unanswered Echo-Requests before the session ends, 1..100"),
        ("restart_timer", float, 0.1, 60, "seconds, RFC 1661 4.6 (default 3)"),
        ("max_configure", int, 1, 100, "Configure-Requests before giving up, 1..100"),
        ("max_failure", int, 1, 100, "Configure-Naks before rejecting, 1..100"),
    ):
        if name in table:
            v = _expect(f"ppp.{name}", table[name], (int, float) if kind is float else int, hint)
            if not lo <= v <= hi:
                raise ConfigError(f"ppp.{name}", f"{v} is out of range", hint)
            values[name] = kind(v)
    for name in ("ipv6", "request_dns"):
        if name in table:
            values[name] = _expect(f"ppp.{name}", table[name], bool, "true or false")
    if "auth" in table:
        names = [_expect("ppp.auth", v, str) for v in _expect("ppp.auth", table["auth"], list)]
        bad = [n for n in names if n not in AUTH_NAMES]
        if bad:
            raise ConfigError(
                "ppp.auth", f"{bad[0]!r} is not a method", 'a list of "mschapv2", "chap", "pap"'
            )
        values["auth"] = tuple(AUTH_NAMES[n] for n in names)
    if "proxy" in table:
        values["proxy"] = _expect("ppp.proxy", table["proxy"], str)
        if values["proxy"] not in ("accept", "renegotiate"):
            raise ConfigError("ppp.proxy", f"{values['proxy']!r}", '"accept" or "renegotiate"')
    for name in ("username", "password"):
        if name in table:
            if role != "lac":
                raise ConfigError(
                    f"ppp.{name}", "is for a LAC's PPP client", 'remove it, or set node.role = "lac"'
                )
            values[name] = _expect(f"ppp.{name}", table[name], str)
    return PppConfig(**values)


def _lns(table: Any) -> LnsConfig:
    _expect("lns", table, dict)
    _unknown("lns", table, {f.name for f in dataclasses.fields(LnsConfig)})
    values: dict[str, Any] = {}
    if "pool" in table:
        from l2tpfast.aaa.pool import AddressPool

        pool = tuple(_expect("lns.pool", v, str) for v in _expect("lns.pool", table["pool"], list))
        AddressPool(pool, key="lns.pool")  # checks every range
        values["pool"] = pool
    if "local_address" in table:
        values["local_address"] = _address_list("lns.local_address", [table["local_address"]])[0]
    for name in ("dns", "nbns"):
        if name in table:
            values[name] = _address_list(f"lns.{name}", table[name])
            if len(values[name]) > 2:
                raise ConfigError(
                    f"lns.{name}", "more than two servers", "IPCP carries a primary and a secondary"
                )
    if "users_file" in table:
        values["users_file"] = _expect("lns.users_file", table["users_file"], str)
    if "ipv6_pool" in table:
        text = _expect("lns.ipv6_pool", table["ipv6_pool"], str, 'an IPv6 prefix such as "2001:db8:100::/48"')
        try:
            net = ipaddress.IPv6Network(text)
        except ValueError:
            raise ConfigError(
                "lns.ipv6_pool", f"{text!r} is not an IPv6 prefix", 'e.g. "2001:db8:100::/48"'
            ) from None
        if net.prefixlen > 64:
            raise ConfigError(
                "lns.ipv6_pool", f"/{net.prefixlen} is longer than /64", "each subscriber gets a /64"
            )
        values["ipv6_pool"] = net
    if "ipv6_dns" in table:
        values["ipv6_dns"] = _address_list("lns.ipv6_dns", table["ipv6_dns"], version=6)
    if "duplicate_logins" in table:
        values["duplicate_logins"] = _expect(
            "lns.duplicate_logins", table["duplicate_logins"], bool, "true or false"
        )
    return LnsConfig(**values)


def _dataplane(table: Any) -> DataplaneConfig | None:
    _expect("dataplane", table, dict)
    known = {f.name for f in dataclasses.fields(DataplaneConfig)} | {"enabled"}
    _unknown("dataplane", table, known)
    if not _expect("dataplane.enabled", table.get("enabled", True), bool):
        return None
    values: dict[str, Any] = {}
    for f in dataclasses.fields(DataplaneConfig):
        if f.name not in table:
            continue
        key, value = f"dataplane.{f.name}", table[f.name]
        if f.name == "tun_addresses":
            values[f.name] = tuple(_expect(key, v, str) for v in _expect(key, value, list))
            for v in values[f.name]:
                try:
                    ipaddress.ip_interface(v)
                except ValueError:
                    raise ConfigError(key, f"{v!r} is not ADDRESS/PREFIX", 'e.g. "10.0.0.1/24"') from None
        elif isinstance(f.default, bool):
            values[f.name] = _expect(key, value, bool, "true or false")
        elif isinstance(f.default, float):
            values[f.name] = float(_expect(key, value, (int, float), "a number of seconds"))
        elif isinstance(f.default, int):
            values[f.name] = _expect(key, value, int, "an integer")
        else:
            values[f.name] = _expect(key, value, str)
    config = DataplaneConfig(**values)
    for key, ok, hint in (
        ("threads", 1 <= config.threads <= 64, "1..64"),
        ("batch", 1 <= config.batch <= 1024, "1..1024"),
        ("max_sessions", 1 <= config.max_sessions <= 1 << 22, "1..4194304"),
        ("reorder_window", 0 <= config.reorder_window <= 1024, "0..1024 (0: no reordering)"),
        ("reorder_timeout", 0 < config.reorder_timeout <= 10, "seconds, above 0 and up to 10"),
        ("mtu", 576 <= config.mtu <= 9000, "576..9000"),
        ("socket_buffer", 65536 <= config.socket_buffer <= 1 << 30, "octets, 65536..1073741824"),
        ("tun_queue", 16 <= config.tun_queue <= 1 << 20, "packets, 16..1048576"),
    ):
        if not ok:
            raise ConfigError(f"dataplane.{key}", f"{getattr(config, key)!r} is out of range", hint)
    return config


def check_files(config: NodeConfig) -> None:
    """Read the files the configuration names (the users file), so that a mistake in one is a
    ConfigError at start, naming the file, the line and the fix, and not at the first login."""
    if config.lns is not None and config.lns.users_file is not None:
        from l2tpfast.aaa.users import UsersFile

        UsersFile.load(config.lns.users_file)


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
