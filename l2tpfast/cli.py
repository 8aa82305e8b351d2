"""The ``l2tpfast`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _version_text() -> str:
    import l2tpfast

    lines = [f"l2tpfast {l2tpfast.__version__}"]
    for name, path in l2tpfast.compiled_modules().items():
        lines.append(f"  compiled: l2tpfast.{name} ({path})")
    return "\n".join(lines)


class _VersionAction(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and the compiled modules")

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        print(_version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="l2tpfast",
        description="L2TPv2 (RFC 2661) LAC and LNS with a compiled batch data plane.",
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    decode = sub.add_parser(
        "decode",
        help="decode L2TP datagrams given as hex (one per argument or line of stdin)",
        description="Decode L2TP datagrams given as hex: header fields, message type and every AVP.",
    )
    decode.add_argument("hex", nargs="*", help="datagram as hex; read lines of stdin when absent")
    decode.add_argument("--secret", help="shared secret, to reveal hidden AVPs")

    run = sub.add_parser(
        "run",
        help="run an LNS or a LAC from a TOML configuration",
        description="Run an L2TP node (role and everything else from the TOML file; reference: "
        "docs/config.md). SIGTERM or SIGINT stops it cleanly: CDN for every session, StopCCN for "
        "every tunnel, each acknowledged or timed out, then routes and TUN devices removed. SIGHUP "
        "rereads the file and applies what can change without dropping sessions.",
    )
    run.add_argument("--config", "-c", required=True, help="TOML configuration file")
    run.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="override [log] level (also after a reload)",
    )

    check = sub.add_parser(
        "check-config",
        help="validate a TOML configuration",
        description="Validate a TOML configuration file (and the users file it names) against "
        "docs/config.md. Every error is printed on its own line, naming the key, the value and the "
        "fix; exit status 2 when there is any.",
    )
    check.add_argument("config", help="TOML configuration file")

    status = sub.add_parser(
        "status",
        help="show tunnels, sessions and counters of a running node",
        description="Ask a running node (over its control socket) for its tunnels, sessions and counters.",
    )
    status.add_argument(
        "--socket", "-s", default=DEFAULT_SOCKET, help=f"control socket (default {DEFAULT_SOCKET})"
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    status.add_argument(
        "--events", type=int, default=50, help="with --json: the last N events (up to 1000; default 50)"
    )

    ctl = sub.add_parser(
        "ctl",
        help="send a command to a running node",
        description="Commands for a running node: open-tunnel PEER, open-session PEER|--tunnel ID, "
        "close-session TUNNEL SESSION, close-tunnel TUNNEL, route-add TUNNEL SESSION ADDRESS "
        "(traffic to ADDRESS into that session, through the data plane), reload (as SIGHUP: "
        "reread the configuration file), stop (as SIGTERM: CDN for every session, StopCCN for "
        "every tunnel).",
    )
    ctl.add_argument(
        "--socket", "-s", default=DEFAULT_SOCKET, help=f"control socket (default {DEFAULT_SOCKET})"
    )
    ctl.add_argument(
        "action",
        choices=[
            "open-tunnel",
            "open-session",
            "close-session",
            "close-tunnel",
            "route-add",
            "reload",
            "stop",
        ],
    )
    ctl.add_argument("args", nargs="*", help="PEER[:PORT], or TUNNEL [SESSION]")
    ctl.add_argument("--tunnel", type=int, help="open-session: place the call on this tunnel")
    ctl.add_argument(
        "--username", help="open-session: the PPP client's user name for this call ([ppp] otherwise)"
    )
    ctl.add_argument("--password", help="open-session: the PPP client's password for this call")
    ctl.add_argument("--calling-number", help="open-session: the Calling Number AVP (RFC 2661 4.4.5)")
    ctl.add_argument("--called-number", help="open-session: the Called Number AVP (RFC 2661 4.4.5)")
    ctl.add_argument(
        "--agent-circuit-id",
        help="open-session: TR-101 Agent-Circuit-Id AVP (vendor 3561), as a BRAS sends it",
    )
    ctl.add_argument("--agent-remote-id", help="open-session: TR-101 Agent-Remote-Id AVP (vendor 3561)")
    from l2tpfast.bench.cli import add_parsers

    add_parsers(sub)
    return parser


DEFAULT_SOCKET = "/run/l2tpfast/l2tpfast.sock"


def _run(config_path: str, log_level: str | None) -> int:
    import asyncio
    import logging

    from l2tpfast.config import check_files, load_config
    from l2tpfast.errors import ConfigError
    from l2tpfast.runtime.node import ControlNode

    try:
        config = load_config(config_path)
        check_files(config)
    except ConfigError as exc:
        _print_config_errors(config_path, exc)
        return 2
    from l2tpfast.runtime.logs import configure_logging

    configure_logging(log_level or config.log.level, config.log.format)
    logging.getLogger("l2tpfast").info("configuration %s", config_path)
    node = ControlNode(config, config_path=config_path)
    node.log_level_override = log_level
    try:
        asyncio.run(node.run())
    except ConfigError as exc:
        _print_config_errors(config_path, exc)
        return 2
    except OSError as exc:
        print(f"l2tpfast: {exc}", file=sys.stderr)
        return 1
    return 0


def _print_config_errors(path: str, exc: Exception) -> None:
    """One line per error, each naming the file, the key, the value and the fix."""
    for error in getattr(exc, "errors", [exc]):
        print(f"l2tpfast: config error: {path}: {error}", file=sys.stderr)


def _check_config(path: str) -> int:
    from l2tpfast.config import check_files, load_config
    from l2tpfast.errors import ConfigError

    try:
        config = load_config(path)
        check_files(config)
    except ConfigError as exc:
        _print_config_errors(path, exc)
        return 2
    print(f"{path}: ok ({config.role}, listen {config.listen}:{config.port})")
    return 0


def _mgmt(socket_path: str, payload: dict[str, object]) -> object:
    import asyncio

    from l2tpfast.runtime.node import request

    return asyncio.run(request(socket_path, payload))


def _status(socket_path: str, as_json: bool, events: int = 50) -> int:
    import json

    try:
        result = _mgmt(socket_path, {"cmd": "status", "events": events})
    except (OSError, TimeoutError) as exc:
        print(f"l2tpfast: cannot reach the node at {socket_path}: {exc}", file=sys.stderr)
        return 1
    assert isinstance(result, dict)
    if as_json:
        print(json.dumps(result, indent=2))
        return 0
    node = result["node"]
    print(f"{node['role']} on {node['listen']} (pid {node['pid']})")
    print(f"{'tunnel':>13} {'peer':<22} {'state':<14} {'host':<16} {'ns':>5} {'nr':>5} {'retx':>5} sessions")
    for t in result["tunnels"]:
        ids = f"{t['local_tunnel_id']}/{t['peer_tunnel_id']}"
        print(
            f"{ids:>13} {t['peer']:<22} {t['state']:<14} {t['peer_host_name'][:16]:<16} "
            f"{t['ns']:>5} {t['nr']:>5} {t['retransmissions']:>5} {len(t['sessions'])}"
        )
        if "counters" in t:
            c = t["counters"]
            print(
                f"{'':>15}data rx {c['rx_packets']} pkts {c['rx_bytes']} B, tx {c['tx_packets']} pkts "
                f"{c['tx_bytes']} B, out of order {c['out_of_order']}, duplicates {c['duplicates']}, "
                f"reorder timeouts {c['reorder_timeouts']}, dropped {c['dropped']}"
            )
        for s in t["sessions"]:
            ids = f"{s['local_session_id']}/{s['peer_session_id']}"
            line = f"{'':>15}session {ids} {s['role']} {s['call_type']} {s['state']}"
            if "counters" in s:
                c = s["counters"]
                line += f"  rx {c['rx_packets']}/{c['rx_bytes']} B  tx {c['tx_packets']}/{c['tx_bytes']} B"
            ppp = s.get("ppp")
            if ppp:
                line += f"  PPP {ppp['phase']} user={ppp['username'] or '-'} {ppp['address'] or ''}"
                line += f" {ppp['prefix'] or ''}".rstrip()
            print(line)
    counters = result["counters"]
    if counters:
        print("counters: " + ", ".join(f"{k}={v}" for k, v in sorted(counters.items())))
    dataplane = result.get("dataplane")
    if dataplane:
        loops = ", ".join(f"{k}={v}" for k, v in dataplane["loops"].items() if v)
        drops = ", ".join(f"{k}={v}" for k, v in dataplane["drops"].items()) or "none"
        print(f"data plane: {dataplane['sessions']} sessions, TUN {dataplane['tun'] or '-'}; {loops}")
        ppp = dataplane.get("ppp")
        if ppp:
            pool = ppp.get("pool")
            in_pool = f", pool {pool['in_use']}/{pool['size']}" if pool else ""
            links = " ".join(f"{k}={v}" for k, v in sorted(ppp["links"].items())) or "none"
            print(
                f"  drops: {drops}; PPP links {links}, logins accepted {ppp['auth_accepted']}, "
                f"refused {ppp['auth_rejected']}, keepalive failures {ppp['keepalive_failures']}{in_pool}"
            )
        else:
            print(f"  drops: {drops}; PPP frames without a PPP engine: {dataplane['ppp_frames_unhandled']}")
    return 0


def _ctl(
    socket_path: str,
    action: str,
    args: list[str],
    tunnel: int | None,
    credentials: tuple[str | None, str | None] = (None, None),
    call: dict[str, str] | None = None,
) -> int:
    import json

    from l2tpfast.errors import L2TPError

    payload: dict[str, object] = {"cmd": action}
    try:
        if action in ("open-tunnel", "open-session") and args:
            host, _, port = args[0].rpartition(":") if args[0].count(":") == 1 else (args[0], "", "")
            payload["peer"] = host
            if port:
                payload["port"] = int(port)
        if action == "open-session" and tunnel is not None:
            payload["tunnel_id"] = tunnel
        if action == "open-session" and credentials[0] is not None:
            payload["username"] = credentials[0]
            payload["password"] = credentials[1] or ""
        if action == "open-session" and call:
            payload["call"] = call
        if action in ("close-session", "close-tunnel", "route-add"):
            payload["tunnel_id"] = int(args[0])
        if action in ("close-session", "route-add"):
            payload["session_id"] = int(args[1])
        if action == "route-add":
            payload["address"] = args[2]
    except (IndexError, ValueError):
        print(f"l2tpfast ctl {action}: missing or bad arguments (see --help)", file=sys.stderr)
        return 2
    try:
        result = _mgmt(socket_path, payload)
    except (OSError, TimeoutError, L2TPError) as exc:
        print(f"l2tpfast ctl {action}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


def _avp_label(vendor: int, attr: int) -> str:
    from l2tpfast.wire.avp import AVP_SPECS

    spec = AVP_SPECS.get((vendor, attr))
    return f"{spec.name} ({vendor}:{attr})" if spec else f"{vendor}:{attr}"


def _decode(hex_items: list[str], secret: str | None) -> int:
    from l2tpfast.errors import L2TPError
    from l2tpfast.wire.header import parse_header
    from l2tpfast.wire.message import parse_message

    items = hex_items or [line.strip() for line in sys.stdin if line.strip()]
    status = 0
    for item in items:
        try:
            data = bytes.fromhex(item.replace(":", "").replace(" ", ""))
        except ValueError as exc:
            print(f"error: not hex: {exc}", file=sys.stderr)
            status = 1
            continue
        try:
            header, offset = parse_header(data)
            if not header.is_control:
                print(
                    f"data tunnel={header.tunnel_id} session={header.session_id} ns={header.ns} "
                    f"payload={len(data) - offset} octets"
                )
                continue
            msg = parse_message(data, secret=secret.encode() if secret else None)
        except L2TPError as exc:
            print(f"error: {type(exc).__name__}: {exc}")
            status = 1
            continue
        print(f"{msg.name} tunnel={msg.tunnel_id} session={msg.session_id} ns={msg.ns} nr={msg.nr}")
        for (vendor, attr), values in msg.values.items():
            for value in values:
                print(f"  {_avp_label(vendor, attr)} = {value!r}")
        for avp in msg.ignored + msg.unrecognized:
            print(f"  {avp.vendor_id}:{avp.attr_type} (not used) = {avp.value.hex()}")
    return status


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "decode":
        return _decode(args.hex, args.secret)
    if args.command == "run":
        return _run(args.config, args.log_level)
    if args.command == "check-config":
        return _check_config(args.config)
    if args.command == "status":
        return _status(args.socket, args.json, args.events)
    if args.command == "ctl":
        call = {
            name: getattr(args, name)
            for name in ("calling_number", "called_number", "agent_circuit_id", "agent_remote_id")
            if getattr(args, name) is not None
        }
        return _ctl(args.socket, args.action, args.args, args.tunnel, (args.username, args.password), call)
    if args.command in ("bench", "bench-sink"):
        from l2tpfast.bench.cli import run

        return run(args)
    parser.print_help()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
