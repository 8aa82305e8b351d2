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
    return parser


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
    parser.print_help()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
