"""The configuration reference: every TOML key, its type, default, meaning and reload rule.

One table serves three purposes, so they cannot drift apart: :mod:`l2tpfast.config` takes
its known keys from it (an unknown key is an error that lists these), SIGHUP applies the
keys marked ``reload`` and reports the others as needing a restart, and
``python -m l2tpfast.schema > docs/config.md`` renders the reference (a test keeps the file
current).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Key:
    name: str
    type: str
    default: str
    meaning: str
    #: SIGHUP applies a new value without a restart (to new tunnels, sessions or requests
    #: where the key says so); otherwise the running value stays and the reload says so.
    reload: bool = False


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    meaning: str
    keys: tuple[Key, ...]

    def names(self) -> set[str]:
        return {k.name for k in self.keys}


def _hot(name: str, type: str, default: str, meaning: str) -> Key:
    """A key SIGHUP applies."""
    return Key(name, type, default, meaning, reload=True)


_TUNNEL_KEYS = (
    _hot("host_name", "string", '"l2tpfast"', "Host Name AVP in SCCRQ/SCCRP (RFC 2661 4.4.3)"),
    _hot("vendor_name", "string", '"l2tpfast"', "Vendor Name AVP"),
    _hot("firmware_revision", "integer", "the package version", "Firmware Revision AVP"),
    _hot("framing_capabilities", "integer", "3 (sync, async)", "Framing Capabilities AVP bits"),
    _hot("bearer_capabilities", "integer", "3 (digital, analog)", "Bearer Capabilities AVP bits"),
    _hot("secret", "string", "none", "tunnel authentication secret (RFC 2661 5.1.1); never logged"),
    Key(
        "hide_avps",
        "bool",
        "false",
        "hide identifiers and dialled numbers (RFC 2661 4.3); needs secret",
        True,
    ),
    _hot("receive_window", "integer", "8", "our Receive Window Size (RFC 2661 5.8)"),
    _hot("retransmit_initial", "seconds", "1.0", "first control retransmission timeout"),
    _hot("retransmit_cap", "seconds", "8.0", "longest retransmission timeout (back-off cap)"),
    _hot("max_retries", "integer", "5", "retransmissions before the tunnel is given up"),
    _hot("ack_delay", "seconds", "0.05", "wait before a ZLB acknowledgement"),
    _hot("hello_interval", "seconds", "60.0", "Hello after this much silence (RFC 2661 5.5); 0: never"),
    _hot("tie_breaker", "bool", "true", "send a Tie Breaker AVP in SCCRQ (RFC 2661 4.4.3)"),
    _hot("sequencing_required", "bool", "false", "ask for / send Sequencing Required"),
    Key(
        "omit_avps", "list of AVP names", "[]", "optional AVPs left out for a peer that chokes on them", True
    ),
    _hot("result_code_byte_order", "string", '"auto"', '"big", "little" or "auto" for Result Codes'),
    _hot("max_sessions", "integer", "0", "sessions per tunnel; 0: no limit"),
    _hot("auto_answer_outgoing", "bool", "true", "LAC: answer an OCRQ at once"),
    _hot("accept_incoming_calls", "bool", "true", "accept ICRQ (LNS) from this peer"),
    _hot("accept_outgoing_calls", "bool", "true", "accept OCRQ (LAC) from this peer"),
)

SECTIONS: tuple[Section, ...] = (
    Section(
        "node",
        "who this node is and where it listens",
        (
            Key("role", "string", '"lns"', '"lns" or "lac"'),
            Key("listen", "IP address", '"0.0.0.0"', 'address to bind; "::" for IPv6 and IPv4'),
            Key("port", "integer", "1701", "UDP port (RFC 2661 8.1); a LAC uses it as source port too"),
            Key("transport", "string", '"udp"', '"udp", or "ip" for L2TP over IP (protocol 115)'),
            Key("control_socket", "path", "none", "management socket for `l2tpfast status` and `ctl`"),
            _hot("log_level", "string", '"info"', "same as [log] level (kept for older files)"),
        ),
    ),
    Section(
        "log",
        "what the daemon writes to stderr (the journal under systemd)",
        (
            _hot("level", "string", '"info"', '"debug", "info", "warning" or "error"'),
            _hot("format", "string", '"text"', '"text", or "json" for one JSON object per line'),
            Key("control_pcap", "path", "none", "write every control message sent and received to this pcap"),
            Key("control_pcap_max_bytes", "integer", "100000000", "stop writing the pcap at this size"),
        ),
    ),
    Section(
        "metrics",
        "a Prometheus endpoint (off unless enabled)",
        (
            Key("enabled", "bool", "false", "serve /metrics"),
            Key("listen", "IP address", '"127.0.0.1"', "address of the metrics HTTP server"),
            Key("port", "integer", "9612", "port of the metrics HTTP server"),
        ),
    ),
    Section("tunnel", "control-connection settings of every tunnel (new tunnels on reload)", _TUNNEL_KEYS),
    Section(
        "profile",
        "[[profile]] tables: tunnel settings for peers matched by address or host name",
        (
            _hot("name", "string", '"profileN"', "a label for logs"),
            _hot("match", "list of strings", "required", 'networks, addresses or "host:NAME"'),
            _hot("(any [tunnel] key)", "", "[tunnel]", "overrides [tunnel] for matching peers"),
        ),
    ),
    Section(
        "limits",
        "admission limits (RFC 2661 leaves them to the implementation)",
        (
            _hot("max_tunnels", "integer", "0", "tunnels in all; 0: no limit"),
            _hot("max_tunnels_per_peer", "integer", "16", "tunnels from one peer address"),
            _hot("max_sessions", "integer", "0", "sessions in all tunnels; 0: no limit"),
            _hot("accept_tunnels", "bool", "true for an LNS", "answer SCCRQ from peers"),
        ),
    ),
    Section(
        "lac",
        'role = "lac": the LNS to dial and the calls to place',
        (
            Key("lns", "IP address", "required", "the LNS to open a tunnel to"),
            Key("lns_port", "integer", "1701", "its UDP port"),
            Key("sessions", "integer", "1", "calls (ICRQ) placed at start"),
            Key("session_tun", "string", "none", 'with [ppp]: one TUN device per session ("ppp%d")'),
        ),
    ),
    Section(
        "dataplane",
        "the compiled forwarding loops",
        (
            Key("enabled", "bool", "true", "false: control plane only"),
            Key("threads", "integer", "1", "forwarding threads, 1..64 (SO_REUSEPORT)"),
            Key("batch", "integer", "64", "datagrams per recvmmsg/sendmmsg, 1..1024"),
            Key("tun", "string", '"l2tp%d"', 'TUN device name; "" hands IP up to PPP instead'),
            Key("tun_addresses", "list of ADDRESS/PREFIX", "[]", "addresses put on the TUN device"),
            Key("mtu", "integer", "1500", "TUN device MTU, 576..9000"),
            Key("max_sessions", "integer", "65536", "session table size"),
            Key("reorder_window", "integer", "16", "data packets held to restore Ns order; 0: none"),
            Key("reorder_timeout", "seconds", "0.1", "longest a gap is waited for"),
            Key("sequence_data", "bool", "false", "LNS: our data carries Ns (RFC 2661 5.4)"),
            Key("socket_buffer", "integer", "4194304", "receive and send buffer of each socket, octets"),
            Key("tun_queue", "integer", "4096", "TUN transmit queue, packets"),
            Key("gso", "bool", "true", "send runs of datagrams to one peer as one UDP GSO message"),
            Key("gro", "bool", "false", "receive runs from one peer coalesced by the kernel (UDP GRO)"),
        ),
    ),
    Section(
        "ppp",
        "PPP in every session (new sessions on reload)",
        (
            _hot("mru", "integer", "none (1500)", "MRU we ask for, 576..65535 (RFC 1661 6.1)"),
            _hot("echo_interval", "seconds", "10.0", "LCP Echo-Request interval; 0: no keepalive"),
            _hot("echo_failure", "integer", "3", "unanswered echoes before the session ends"),
            _hot("restart_timer", "seconds", "3.0", "RFC 1661 4.6 Restart timer"),
            _hot("max_configure", "integer", "10", "Configure-Requests before giving up"),
            _hot("max_failure", "integer", "5", "Configure-Naks before rejecting"),
            _hot("ipv6", "bool", "false", "negotiate IPv6CP (RFC 5072)"),
            Key(
                "auth",
                "list of strings",
                '["mschapv2", "chap", "pap"]',
                "LNS: methods asked for, preferred first",
                True,
            ),
            Key(
                "proxy",
                "string",
                '"accept"',
                'take proxy LCP/authentication (RFC 2661 4.4.5) or "renegotiate"',
                True,
            ),
            _hot("username", "string", '""', "LAC: the PPP client's user name"),
            _hot("password", "string", '""', "LAC: the PPP client's password; never logged"),
            _hot("request_dns", "bool", "true", "LAC: ask for DNS servers (RFC 1877)"),
        ),
    ),
    Section(
        "lns",
        'role = "lns" with [ppp]: what subscribers get',
        (
            Key("pool", "list of ranges", "[]", 'IPv4 pool: "10.100.0.0/16" or "10.1.0.10-10.1.0.99"'),
            Key("pools", "table of name = ranges", "{}", "named pools a RADIUS Framed-Pool chooses"),
            Key("local_address", "IPv4 address", "none", "our address on every PPP link"),
            _hot("dns", "list of IPv4", "[]", "DNS servers offered by IPCP (RFC 1877), at most two"),
            _hot("nbns", "list of IPv4", "[]", "NBNS servers offered by IPCP (RFC 1877)"),
            Key(
                "users_file", "path", "none", "local logins (format: examples/users); reread on SIGHUP", True
            ),
            _hot("duplicate_logins", "bool", "true", "false: refuse a second session of one user"),
            Key("ipv6_pool", "IPv6 prefix", "none", "one /64 per subscriber, by Router Advertisement"),
            _hot("ipv6_dns", "list of IPv6", "[]", "RDNSS in Router Advertisements (RFC 8106)"),
        ),
    ),
    Section(
        "radius",
        "RADIUS authentication and accounting (RFC 2865, 2866) and dynamic authorization (RFC 5176)",
        (
            Key(
                "servers",
                "list of HOST[:PORT]",
                "required",
                "authentication servers, in failover order",
                True,
            ),
            Key(
                "accounting_servers", "list of HOST[:PORT]", "servers, port 1813", "accounting servers", True
            ),
            _hot("secret", "string", "required", "shared secret; never logged"),
            _hot("timeout", "seconds", "3.0", "wait for an answer before retransmitting"),
            _hot("retries", "integer", "3", "retransmissions to one server before the next"),
            _hot("dead_time", "seconds", "30.0", "a server that did not answer is skipped this long"),
            _hot("nas_identifier", "string", "[tunnel] host_name", "NAS-Identifier"),
            _hot("nas_ip_address", "IPv4 address", "none", "NAS-IP-Address"),
            _hot("accounting", "bool", "true", "send Start, Interim-Update and Stop"),
            Key(
                "interim_interval",
                "seconds",
                "0",
                "Interim-Update interval when the server sends none; 0: none",
                True,
            ),
            _hot("min_interim_interval", "seconds", "60", "floor for a server's Acct-Interim-Interval"),
            Key("dae_port", "integer", "0", "Disconnect/CoA-Request port (RFC 5176: 3799); 0: off"),
            Key("dae_listen", "IP address", '"0.0.0.0"', "address of the DAE listener"),
            Key(
                "dae_clients",
                "list of addresses",
                "the servers",
                "who may send Disconnect/CoA (same secret)",
                True,
            ),
        ),
    ),
)

BY_NAME = {s.name: s for s in SECTIONS}


def known(section: str) -> set[str]:
    """The keys ``section`` accepts."""
    return BY_NAME[section].names()


def reloadable(section: str, key: str) -> bool:
    """Whether SIGHUP applies a change of ``section.key`` (profiles: any key)."""
    found = BY_NAME.get(section)
    if found is None:
        return False
    if section == "profile":
        return True
    return any(k.name == key and k.reload for k in found.keys)


def render() -> str:
    out = [
        "# Configuration reference",
        "",
        "Generated by `python -m l2tpfast.schema` from `l2tpfast/schema.py`; do not edit.",
        "`l2tpfast check-config FILE` checks a file against it. Every error names the key, the",
        "value and the fix; all errors of a file are reported together and nothing starts.",
        "SIGHUP rereads the file: keys marked *yes* take effect (for new tunnels, sessions and",
        "RADIUS requests where that is what they govern); a change to any other key is logged as",
        "needing a restart and the running value stays. Examples: `examples/*.toml`.",
        "",
    ]
    for section in SECTIONS:
        header = f"[[{section.name}]]" if section.name == "profile" else f"[{section.name}]"
        out += [f"## `{header}`", "", section.meaning[0].upper() + section.meaning[1:] + ".", ""]
        out += ["| key | type | default | reload | meaning |", "|---|---|---|---|---|"]
        for k in section.keys:
            reload = "yes" if k.reload else "restart"
            out.append(f"| `{k.name}` | {k.type} | {k.default} | {reload} | {k.meaning} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(render(), end="")
