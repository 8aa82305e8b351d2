"""`make demo`: our LNS and our LAC in two namespaces, N PPP sessions, traffic through all of them.

    python bench/demo.py [--sessions 100] [--seconds 10] [--size 512] [--rate 20000]

It brings the sessions up (LCP, CHAP, IPCP for each), prints how long that took, then offers
UDP traffic both ways through every session at the given rate (datagrams a second, each way)
and prints a table once a second: sessions up, and the packets a second and Mbit/s (IP level)
that came out of each end's TUN device. A summary compares what was offered with what arrived
at the sinks, and everything is removed at the end (also on Ctrl-C). Needs root.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "e2e"))
sys.path.insert(0, str(HERE / "baseline"))

from ppp_lab import LNS_ADDRESS, SINK_PORT, PppLab, parse_json_line, tun_counts, up_addresses  # noqa: E402

from build import build_baselines  # noqa: E402


def mbits(pps: float, size: int) -> float:
    return pps * (size + 28) * 8 / 1e6  # IP packets: UDP payload plus 8 + 20 octets of headers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=512, help="UDP payload octets")
    parser.add_argument(
        "--rate", type=int, default=20000, help="datagrams a second offered each way (0: flat out)"
    )
    args = parser.parse_args(argv)
    relay = build_baselines()["relay"]
    with tempfile.TemporaryDirectory(prefix="l2tpfast-demo-") as tmp, PppLab(args.sessions, Path(tmp)) as lab:
        print(
            f"{args.sessions} PPP sessions up (LCP, CHAP, IPCP) in {lab.setup_seconds:.2f} s: "
            f"{args.sessions / max(lab.setup_seconds, 1e-9):.0f} sessions/s; addresses "
            f"{lab.addresses[0]} .. {lab.addresses[-1]}"
        )
        seconds = args.seconds
        sinks = {
            role: lab.exec(
                role,
                [str(relay), "recv", str(SINK_PORT), "64", "1000000000", str(seconds + 4), "2000"],
                stdout=-1,
                stderr=-3,
            )
            for role in ("lac", "lns")
        }
        time.sleep(0.3)
        addresses = ",".join(lab.addresses)
        common = [str(args.size), str(seconds), "32"]
        # Counters before the generators start, so the summary counts exactly what they sent.
        last_lns, last_lac = tun_counts(lab.status("lns"))[0], tun_counts(lab.status("lac"))[0]
        first_lns, first_lac = last_lns, last_lac
        up = lab.exec(
            "lac",
            [str(relay), "mblast", LNS_ADDRESS, str(SINK_PORT), *common, addresses, str(args.rate)],
            stdout=-1,
        )
        down = lab.exec(
            "lns",
            [str(relay), "mblast", addresses, str(SINK_PORT), *common, LNS_ADDRESS, str(args.rate)],
            stdout=-1,
        )
        print(
            f"offering {args.rate or 'flat out'} datagrams/s of {args.size} octets each way for {seconds:g} s"
        )
        print(
            f"{'t':>4} {'sessions':>8} {'up pps':>10} {'up Mbit/s':>10} {'down pps':>10} {'down Mbit/s':>11}"
        )
        t0 = last_t = time.monotonic()
        while up.poll() is None or down.poll() is None:
            time.sleep(1.0)
            lns_status, lac_status = lab.status("lns"), lab.status("lac")
            now = time.monotonic()
            lns_tx, lac_tx = tun_counts(lns_status)[0], tun_counts(lac_status)[0]
            dt = now - last_t
            up_pps, down_pps = (lns_tx - last_lns) / dt, (lac_tx - last_lac) / dt
            print(
                f"{now - t0:4.0f} {len(up_addresses(lac_status)):8d} "
                f"{up_pps:10.0f} {mbits(up_pps, args.size):10.1f} "
                f"{down_pps:10.0f} {mbits(down_pps, args.size):11.1f}",
                flush=True,
            )
            last_lns, last_lac, last_t = lns_tx, lac_tx, now
        sent_up = parse_json_line(up.communicate()[0])
        sent_down = parse_json_line(down.communicate()[0])
        got = {role: parse_json_line(p.communicate(timeout=seconds + 10)[0]) for role, p in sinks.items()}
        lns_status, lac_status = lab.status("lns"), lab.status("lac")
        delivered_up, delivered_down = (
            tun_counts(lns_status)[0] - first_lns,
            tun_counts(lac_status)[0] - first_lac,
        )
        print("\nsummary")
        for name, sent, delivered, sink in (
            ("upstream (LAC -> LNS TUN)", sent_up, delivered_up, got["lns"]),
            ("downstream (LNS -> LAC TUN)", sent_down, delivered_down, got["lac"]),
        ):
            offered = sent["packets"]
            loss = 100.0 * (offered - sink["packets"]) / offered if offered else 0.0
            print(
                f"  {name}: offered {offered} ({sent['pps']:.0f}/s), out of the TUN device {delivered}, "
                f"at the sink {sink['packets']} ({loss:.2f}% lost), "
                f"{mbits(sent['pps'] * (1 - loss / 100), args.size):.1f} Mbit/s"
            )
        ppp = lns_status["dataplane"]["ppp"]
        print(
            f"  LNS: {len(up_addresses(lns_status))} sessions up, {ppp['auth_accepted']} logins accepted, "
            f"{ppp['auth_rejected']} refused, pool {ppp['pool']['in_use']}/{ppp['pool']['size']} in use"
        )
    print("cleaned up: namespaces, daemons and TUN devices are gone")
    return 0


if __name__ == "__main__":
    sys.exit(main())
