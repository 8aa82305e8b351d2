"""``l2tpfast bench`` and ``l2tpfast bench-sink``: their arguments and what they run."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x.replace("k", "e3").replace("M", "e6")) for x in text.split(",") if x)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: numbers separated by commas (10k, 1.5M)") from None


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: integers separated by commas") from None


def add_parsers(sub: Any) -> None:
    bench = sub.add_parser(
        "bench",
        help="measure an LNS: N tunnels x M PPP sessions, traffic each way, loss, latency, CPU",
        description="Load generator for any L2TPv2 LNS. It brings up --tunnels x --sessions PPP "
        "sessions (LCP, the authentication the LNS asks for, IPCP) at --setup-rate, then offers "
        "UDP traffic of --size octets (IP) through every session at each --rate (packets a second, "
        "each way), upstream to a sink behind the LNS (--sink-address) and downstream from it, for "
        "--duration seconds a step. With --search it steps the rate up by --step-factor until a "
        "step loses more than --max-loss, and reports the highest loss-free rate. The sink "
        "(`l2tpfast bench-sink`) runs on the LNS's side: started here (in --sink-netns if given), "
        "or reached over TCP (--sink HOST:PORT). It reports setup rate and latency, delivered pps "
        "and Mbit/s, loss, late (reordered) packets, round-trip percentiles and, with --lns-pid or "
        "--lns-process (found on the sink's host), the LNS's CPU per packet; and it says when the "
        "harness itself was the limit.",
    )
    bench.add_argument("--lns", required=True, help="the LNS's address")
    bench.add_argument("--lns-port", type=int, default=1701, help="its UDP port (1701)")
    bench.add_argument("--listen", default="0.0.0.0", help="our address (an ephemeral UDP port is used)")
    bench.add_argument("--tunnels", type=int, default=1, help="tunnels (1)")
    bench.add_argument("--sessions", type=int, default=10, help="sessions per tunnel (10)")
    bench.add_argument("--setup-rate", type=float, default=0.0, help="calls placed a second; 0: all at once")
    bench.add_argument(
        "--setup-timeout", type=float, default=60.0, help="seconds for the sessions to come up"
    )
    bench.add_argument("--username", default="bench", help="PPP user name; {n} is the call's number (0..)")
    bench.add_argument("--password", default="bench", help="PPP password; {n} as in --username")
    bench.add_argument("--secret", help="tunnel authentication secret (RFC 2661 5.1.1)")
    bench.add_argument("--sink", help="HOST:PORT of a running `l2tpfast bench-sink --control`")
    bench.add_argument("--sink-netns", help="start the sink in this network namespace (the LNS's)")
    bench.add_argument(
        "--sink-address", required=True, help="the sink host's IPv4 address that the LNS routes to"
    )
    bench.add_argument("--sink-port", type=int, default=47000, help="UDP port of the traffic (47000)")
    bench.add_argument(
        "--direction", choices=["up", "down", "both", "each"], default="both",
        help="up: to the sink; down: from it; both: at once; each: up, then down (both)",
    )  # fmt: skip
    bench.add_argument("--size", type=_ints, default=(512,), help="IP packet octets, e.g. 64,1400 (512)")
    bench.add_argument("--rate", type=_floats, default=(10000.0,), help="pps each way, e.g. 10k,50k (10k)")
    bench.add_argument("--duration", type=float, default=5.0, help="seconds a step (5)")
    bench.add_argument("--search", action="store_true", help="find the highest loss-free rate from --rate")
    bench.add_argument("--step-factor", type=float, default=1.5, help="--search: rate factor per step (1.5)")
    bench.add_argument("--refine", type=int, default=3, help="--search: bisections after the first loss (3)")
    bench.add_argument(
        "--trials", type=int, default=2, help="--search: tries before a step's loss counts (2)"
    )
    bench.add_argument(
        "--max-loss", type=float, default=0.001, help="loss-free means at most this share (0.001)"
    )
    bench.add_argument("--probe-rate", type=float, default=200.0, help="round-trip probes a second (200)")
    bench.add_argument(
        "--lns-pid", type=int, action="append", default=[], help="LNS process for CPU (repeat)"
    )
    bench.add_argument(
        "--lns-process", action="append", default=[], metavar="NAME",
        help="LNS processes for CPU by name, e.g. l2tpns (every one so called; repeat)",
    )  # fmt: skip
    bench.add_argument("--batch", type=int, default=64, help="datagrams per sendmmsg/recvmmsg (64)")
    bench.add_argument("--burst", type=int, default=32, help="packets in a row to one session (32)")
    bench.add_argument("--json", metavar="FILE", help="write the report as JSON")
    bench.add_argument("--plot", metavar="PREFIX", help="write PREFIX-rate.png and PREFIX-latency.png")
    bench.add_argument("--quiet", action="store_true", help="no live progress lines")
    bench.add_argument("--label", help="a name for the LNS in the report and the plots")

    sink = sub.add_parser(
        "bench-sink",
        help="the sink behind the LNS that `l2tpfast bench` drives",
        description="Counts the benchmark's upstream packets where the LNS delivers them, echoes "
        "its latency probes, and sends its downstream traffic. `l2tpfast bench` starts it itself "
        "(standard input and output carry the commands); on another host, run it with --control "
        "and give the generator --sink HOST:PORT.",
    )
    sink.add_argument("--control", metavar="HOST:PORT", help="take commands over TCP here, not stdin")


def run(args: argparse.Namespace) -> int:
    if args.command == "bench-sink":
        from l2tpfast.bench import sink

        if args.control:
            host, _, port = args.control.rpartition(":")
            sink.serve_tcp(host.strip("[]") or "0.0.0.0", int(port))
        else:
            sink.serve(sys.stdin, sys.stdout)
        return 0
    from l2tpfast.bench import report as reports
    from l2tpfast.bench.runner import BenchOptions, run_bench

    options = BenchOptions(
        lns=args.lns, lns_port=args.lns_port, listen=args.listen, tunnels=args.tunnels,
        sessions=args.sessions, setup_rate=args.setup_rate, setup_timeout=args.setup_timeout,
        username=args.username, password=args.password, secret=args.secret, sink=args.sink,
        sink_netns=args.sink_netns, sink_address=args.sink_address, sink_port=args.sink_port,
        direction=args.direction, sizes=args.size, rates=args.rate, duration=args.duration,
        search=args.search, step_factor=args.step_factor, refine=args.refine, trials=args.trials,
        max_loss=args.max_loss,
        probe_rate=args.probe_rate, lns_pids=tuple(args.lns_pid), lns_processes=tuple(args.lns_process),
        batch=args.batch, burst=args.burst,
        progress=not args.quiet, extra={"label": args.label} if args.label else {},
    )  # fmt: skip
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("error: --plot needs matplotlib: pip install 'l2tpfast[plot]'", file=sys.stderr)
            return 2
    try:
        options.check()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        report = run_bench(options)
    except (RuntimeError, OSError, ConnectionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print()
    print(reports.table(report))
    if args.json:
        reports.write_json(report, args.json)
        print(f"report: {args.json}")
    if args.plot:
        for path in reports.plot(report, args.plot):
            print(f"plot: {path}")
    return 0
