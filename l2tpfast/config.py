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

from l2tpfast import schema
from l2tpfast.control.settings import ByteOrder, EndpointSettings, PeerProfile, TunnelSettings
from l2tpfast.errors import ConfigError, ConfigErrors
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
    #: Named pools (``[lns.pools]``), chosen by a RADIUS Framed-Pool (RFC 2869 5.18).
    pools: tuple[tuple[str, tuple[str, ...]], ...] = ()
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
    #: UDP GSO (udp(7) UDP_SEGMENT): runs of equal datagrams to one peer leave as one message; the
    #: loops turn it off by themselves where the kernel refuses it (no checksum offload).
    gso: bool = True
    #: UDP GRO (udp(7) UDP_GRO): the kernel may hand over a run of datagrams from one peer in one
    #: buffer, which the loops cut up again; fewer receive calls for a busy tunnel.
    gro: bool = False


@dataclass(frozen=True, slots=True)
class LogConfig:
    """``[log]``: level, text or JSON lines, and an optional pcap of control messages."""

    level: str = "info"
    format: str = "text"
    control_pcap: str | None = None
    control_pcap_max_bytes: int = 100_000_000


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """``[metrics]`` with enabled = true: the Prometheus endpoint."""

    listen: str = "127.0.0.1"
    port: int = 9612


@dataclass(frozen=True, slots=True)
class RadiusConfig:
    """``[radius]``: servers in failover order as (address, port); the secret is never shown."""

    servers: tuple[tuple[str, int], ...]
    accounting_servers: tuple[tuple[str, int], ...]
    secret: str = field(repr=False)
    timeout: float = 3.0
    retries: int = 3
    dead_time: float = 30.0
    nas_identifier: str = "l2tpfast"
    nas_ip_address: ipaddress.IPv4Address | None = None
    accounting: bool = True
    interim_interval: float = 0.0
    min_interim_interval: float = 60.0
    dae_port: int = 0
    dae_listen: str = "0.0.0.0"
    dae_clients: tuple[str, ...] = ()


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
    log: LogConfig = field(default_factory=LogConfig)
    metrics: MetricsConfig | None = None
    radius: RadiusConfig | None = None
    #: The TOML document this was read from (SIGHUP compares the new one key by key).
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


_KIND_NAMES = {int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a table"}


def _expect(key: str, value: Any, kind: type | tuple[type, ...], hint: str = "") -> Any:
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise ConfigError(key, f"{value!r} is a boolean, not a number", hint)
    if not isinstance(value, kind):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        names = "a number" if float in kinds else " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)
        if kind is bool:
            names = "true or false"
        raise ConfigError(key, f"{value!r} is not {names}", hint)
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


def _section(data: dict[str, Any], name: str) -> dict[str, Any]:
    table: dict[str, Any] = _expect(name, data.get(name, {}), dict, f"a table: [{name}]")
    _unknown(name, table, schema.known(name))
    return table


def _node(data: dict[str, Any]) -> dict[str, Any]:
    node = _section(data, "node")
    transport = _expect("node.transport", node.get("transport", "udp"), str)
    if transport not in ("udp", "ip"):
        raise ConfigError(
            "node.transport", f"{transport!r} is not udp or ip", "ip: L2TP over IP protocol 115"
        )
    role = _expect("node.role", node.get("role", "lns"), str)
    if role not in ("lns", "lac"):
        raise ConfigError("node.role", f"{role!r} is not lns or lac")
    listen = _ip("node.listen", node.get("listen", "0.0.0.0"), '"0.0.0.0" or "::"')
    port = _port("node.port", node.get("port", DEFAULT_PORT))
    control_socket = node.get("control_socket")
    if control_socket is not None:
        _expect("node.control_socket", control_socket, str, 'a path, e.g. "/run/l2tpfast/l2tpfast.sock"')
    log_level = _level("node.log_level", node.get("log_level", "info"))
    return {
        "role": role,
        "listen": listen,
        "port": port,
        "control_socket": control_socket,
        "transport": transport,
        "log_level": log_level,
    }


def _ip(key: str, value: Any, example: str) -> str:
    """An IPv4 or IPv6 address given as a string."""
    text = _expect(key, value, str, f"an IP address, e.g. {example}")
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise ConfigError(key, f"{text!r} is not an IP address", f"e.g. {example}") from None
    return str(text)


def _port(key: str, value: Any) -> int:
    port = _expect(key, value, int, "a port number, 0..65535")
    if not 0 <= port <= 0xFFFF:
        raise ConfigError(key, f"{port} is out of range", "a port number, 0..65535")
    return int(port)


LOG_LEVELS = ("debug", "info", "warning", "error")


def _level(key: str, value: Any) -> str:
    level = _expect(key, value, str, 'e.g. "info"')
    if level not in LOG_LEVELS:
        raise ConfigError(key, f"{level!r} is not a level", "one of debug, info, warning, error")
    return str(level)


def _log(data: dict[str, Any], node_level: str) -> LogConfig:
    table = _section(data, "log")
    level = _level("log.level", table["level"]) if "level" in table else node_level
    fmt = _expect("log.format", table.get("format", "text"), str, '"text" or "json"')
    if fmt not in ("text", "json"):
        raise ConfigError("log.format", f"{fmt!r} is not text or json", "json: one JSON object per line")
    pcap = table.get("control_pcap")
    if pcap is not None:
        _expect("log.control_pcap", pcap, str, 'a file path, e.g. "/var/log/l2tpfast/control.pcap"')
    cap = _expect("log.control_pcap_max_bytes", table.get("control_pcap_max_bytes", 100_000_000), int)
    if cap < 4096:
        raise ConfigError("log.control_pcap_max_bytes", f"{cap} is too small", "at least 4096 octets")
    return LogConfig(level, fmt, pcap, cap)


def _metrics(data: dict[str, Any]) -> MetricsConfig | None:
    table = _section(data, "metrics")
    if not _expect("metrics.enabled", table.get("enabled", False), bool, "true or false"):
        return None
    listen = _ip("metrics.listen", table.get("listen", "127.0.0.1"), '"127.0.0.1"')
    return MetricsConfig(listen, _port("metrics.port", table.get("port", 9612)))


def _host_port(key: str, value: Any, default_port: int) -> tuple[str, int]:
    text = _expect(key, value, str, 'e.g. "192.0.2.10" or "192.0.2.10:1812" or "[2001:db8::1]:1812"')
    host, port = text, default_port
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            port = _port(key, int(rest[1:])) if rest[1:].isdigit() and rest[0] == ":" else -1
    elif text.count(":") == 1:
        host, _, rest = text.partition(":")
        port = _port(key, int(rest)) if rest.isdigit() else -1
    try:
        ipaddress.ip_address(host)
    except ValueError:
        port = -1
    if port < 0:
        raise ConfigError(key, f"{text!r} is not ADDRESS[:PORT]", 'e.g. "192.0.2.10:1812"')
    return host, port


def _radius(data: dict[str, Any], host_name: str) -> RadiusConfig | None:
    if "radius" not in data:
        return None
    table = _section(data, "radius")
    secret = _expect("radius.secret", table.get("secret"), str, 'the shared secret: secret = "..."')
    if not secret:
        raise ConfigError("radius.secret", "is empty", "RADIUS needs the secret shared with the servers")
    raw = _expect("radius.servers", table.get("servers"), list, 'e.g. servers = ["192.0.2.10"]')
    if not raw:
        raise ConfigError("radius.servers", "is empty", 'list at least one server, e.g. ["192.0.2.10"]')
    servers = tuple(_host_port("radius.servers", v, 1812) for v in raw)
    acct_raw = table.get("accounting_servers")
    if acct_raw is None:
        accounting_servers = tuple((host, 1813) for host, _ in servers)
    else:
        accounting_servers = tuple(
            _host_port("radius.accounting_servers", v, 1813)
            for v in _expect("radius.accounting_servers", acct_raw, list, 'e.g. ["192.0.2.10:1813"]')
        )
    values: dict[str, Any] = {}
    for name, lo, hi, hint in (
        ("timeout", 0.1, 60, "seconds to wait for an answer, 0.1..60"),
        ("dead_time", 0, 3600, "seconds a silent server is skipped, 0..3600"),
        ("interim_interval", 0, 86400, "seconds between Interim-Updates, 0 (none)..86400"),
        ("min_interim_interval", 1, 86400, "seconds, 1..86400 (RFC 2869 5.16 suggests 600)"),
    ):
        if name in table:
            v = _expect(f"radius.{name}", table[name], (int, float), hint)
            if not lo <= v <= hi:
                raise ConfigError(f"radius.{name}", f"{v} is out of range", hint)
            values[name] = float(v)
    if "retries" in table:
        values["retries"] = _expect("radius.retries", table["retries"], int, "0..10")
        if not 0 <= values["retries"] <= 10:
            raise ConfigError("radius.retries", f"{values['retries']} is out of range", "0..10")
    if "accounting" in table:
        values["accounting"] = _expect("radius.accounting", table["accounting"], bool, "true or false")
    nas_identifier = _expect("radius.nas_identifier", table.get("nas_identifier", host_name), str)
    nas_ip = table.get("nas_ip_address")
    if nas_ip is not None:
        values["nas_ip_address"] = _address_list("radius.nas_ip_address", [nas_ip])[0]
    dae_port = _port("radius.dae_port", table.get("dae_port", 0))
    dae_listen = _ip("radius.dae_listen", table.get("dae_listen", "0.0.0.0"), '"0.0.0.0"')
    clients_raw = table.get("dae_clients")
    if clients_raw is None:
        dae_clients = tuple(dict.fromkeys(host for host, _ in servers))
    else:
        dae_clients = tuple(
            str(ipaddress.ip_address(_host_port("radius.dae_clients", v, 0)[0]))
            for v in _expect("radius.dae_clients", clients_raw, list, 'e.g. ["192.0.2.10"]')
        )
    return RadiusConfig(
        servers=servers,
        accounting_servers=accounting_servers,
        secret=secret,
        nas_identifier=nas_identifier,
        dae_port=dae_port,
        dae_listen=dae_listen,
        dae_clients=dae_clients,
        **values,
    )


def _limits(data: dict[str, Any], role: str) -> dict[str, Any]:
    limits = _section(data, "limits")
    values: dict[str, Any] = {}
    for key in ("max_tunnels", "max_tunnels_per_peer", "max_sessions"):
        if key in limits:
            value = _expect(f"limits.{key}", limits[key], int, "an integer, 0 for no limit")
            if value < 0:
                raise ConfigError(f"limits.{key}", f"{value} is negative", "0 means no limit")
            values[key] = value
    values["accept_tunnels"] = _expect(
        "limits.accept_tunnels", limits.get("accept_tunnels", role == "lns"), bool, "true or false"
    )
    return values


def _lac(data: dict[str, Any], role: str) -> LacConfig | None:
    if role != "lac":
        if "lac" in data:
            raise ConfigError("lac", 'is only for role = "lac"', "remove it or set node.role")
        return None
    _expect("lac", data.get("lac"), dict, "a LAC needs a [lac] section with lns = ADDRESS")
    table = _section(data, "lac")
    lns = _ip("lac.lns", table.get("lns"), 'lns = "192.0.2.2", the LNS address')
    sessions = _expect("lac.sessions", table.get("sessions", 1), int, "the number of calls placed at start")
    if sessions < 0:
        raise ConfigError("lac.sessions", f"{sessions} is negative", "0 opens the tunnel only")
    session_tun = table.get("session_tun")
    if session_tun is not None:
        _expect("lac.session_tun", session_tun, str, 'a device name pattern such as "ppp%d"')
        if not 0 < len(session_tun) <= 15:
            raise ConfigError("lac.session_tun", f"{session_tun!r}", '1..15 characters, e.g. "ppp%d"')
    return LacConfig(lns, _port("lac.lns_port", table.get("lns_port", DEFAULT_PORT)), sessions, session_tun)


class _Errors:
    """Collects one ConfigError per section, so a file with several mistakes shows them all."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []

    def run(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except ConfigError as exc:
            self.errors.append(exc)
            return None

    def raise_if_any(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise ConfigErrors(self.errors)


def parse_config(data: dict[str, Any]) -> NodeConfig:
    """Check a parsed TOML document and build the node's settings.

    Each section is checked on its own, so a file with a mistake in several sections gets one
    message for each (:class:`~l2tpfast.errors.ConfigErrors`); the checks across sections run
    once every section is right.
    """
    _unknown("", data, {s.name for s in schema.SECTIONS})
    errors = _Errors()
    node = errors.run(_node, data) or {"role": "lns", "transport": "udp", "log_level": "info"}
    role = node["role"]
    log_config = errors.run(_log, data, node["log_level"])
    metrics = errors.run(_metrics, data)
    tunnel = errors.run(lambda: TunnelSettings(**_tunnel_overrides("tunnel", _section(data, "tunnel"))))
    limit_values = errors.run(_limits, data, role)
    profiles = errors.run(
        lambda: tuple(
            _profile(i, _expect(f"profile[{i}]", t, dict))
            for i, t in enumerate(_expect("profile", data.get("profile", []), list, "[[profile]] tables"))
        )
    )
    lac = errors.run(_lac, data, role)
    dataplane = errors.run(lambda: _dataplane(data["dataplane"]) if "dataplane" in data else None)
    ppp = errors.run(lambda: _ppp(data["ppp"], role) if "ppp" in data else None)
    lns_config = errors.run(_lns_section, data, role)
    radius = errors.run(_radius, data, tunnel.host_name if tunnel is not None else "l2tpfast")
    errors.raise_if_any()
    assert tunnel is not None and limit_values is not None and profiles is not None and log_config is not None
    _check_across(node, dataplane, ppp, lns_config, lac, radius)
    endpoint = EndpointSettings(tunnel=tunnel, profiles=profiles, **limit_values)
    return NodeConfig(
        role,
        node["listen"],
        node["port"],
        node["control_socket"],
        log_config.level,
        endpoint,
        lac,
        node["transport"],
        dataplane,
        ppp,
        lns_config,
        log=log_config,
        metrics=metrics,
        radius=radius,
    )


def _lns_section(data: dict[str, Any], role: str) -> LnsConfig | None:
    if "lns" not in data:
        return None
    if role != "lns":
        raise ConfigError("lns", 'is only for role = "lns"', "remove it or set node.role")
    return _lns(data["lns"])


def _check_across(
    node: dict[str, Any],
    dataplane: DataplaneConfig | None,
    ppp: PppConfig | None,
    lns_config: LnsConfig | None,
    lac: LacConfig | None,
    radius: RadiusConfig | None,
) -> None:
    role = node["role"]
    if node["transport"] == "ip" and dataplane is not None and dataplane.threads != 1:
        raise ConfigError("dataplane.threads", "L2TP over IP runs one thread", "set threads = 1")
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
        has_users = lns_config is not None and lns_config.users_file is not None
        if role == "lns" and ppp.auth and not has_users and radius is None:
            raise ConfigError(
                "lns.users_file",
                "authentication is required but there is no users file and no [radius]",
                'set users_file = "/etc/l2tpfast/users", add [radius], or [ppp] auth = [] to let everyone in',
            )
        if has_users and radius is not None:
            raise ConfigError(
                "lns.users_file", "both a users file and [radius] authenticate", "keep one of the two"
            )
        if lns_config is not None and lns_config.ipv6_pool is not None and not ppp.ipv6:
            raise ConfigError("lns.ipv6_pool", "IPv6 prefixes without IPv6CP", "set [ppp] ipv6 = true")
    elif lns_config is not None:
        raise ConfigError("lns", "subscriber settings without PPP", "add a [ppp] section")
    if radius is not None and (role != "lns" or ppp is None):
        raise ConfigError(
            "radius", "RADIUS serves an LNS that terminates PPP", 'set role = "lns" and add [ppp]'
        )
    if lac is not None and lac.session_tun is not None and ppp is None:
        raise ConfigError(
            "lac.session_tun", "per-session TUN devices carry PPP sessions", "add a [ppp] section"
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
    _unknown("ppp", table, schema.known("ppp"))
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
    _unknown("lns", table, schema.known("lns"))
    values: dict[str, Any] = {}
    if "pool" in table:
        from l2tpfast.aaa.pool import AddressPool

        pool = tuple(_expect("lns.pool", v, str) for v in _expect("lns.pool", table["pool"], list))
        AddressPool(pool, key="lns.pool")  # checks every range
        values["pool"] = pool
    if "pools" in table:
        values["pools"] = _named_pools(table["pools"], values.get("pool", ()))
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


def _named_pools(table: Any, default: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``[lns.pools]`` name = [ranges]: disjoint from each other and from ``pool``."""
    from l2tpfast.aaa.pool import AddressPool

    hint = 'a table of name = ["10.200.0.0/24"], e.g. [lns.pools] gold = ["10.200.0.0/24"]'
    out: list[tuple[str, tuple[str, ...]]] = []
    seen: list[tuple[str, int, int]] = (
        [("lns.pool", a, b) for a, b in AddressPool(default).ranges] if default else []
    )
    for name, ranges in _expect("lns.pools", table, dict, hint).items():
        key = f"lns.pools.{name}"
        specs = tuple(_expect(key, v, str) for v in _expect(key, ranges, list, hint))
        for first, last in AddressPool(specs, key=key).ranges:
            for other, a, b in seen:
                if first <= b and a <= last:
                    raise ConfigError(key, f"overlaps {other}", "pools must not share addresses")
            seen.append((key, first, last))
        out.append((str(name), specs))
    return tuple(out)


def _dataplane(table: Any) -> DataplaneConfig | None:
    _expect("dataplane", table, dict)
    _unknown("dataplane", table, schema.known("dataplane"))
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
    return dataclasses.replace(parse_config(data), raw=data)
