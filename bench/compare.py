"""`make bench-compare`: l2tpns and the l2tpfast LNS under the same `l2tpfast bench`, side by side.

    python bench/compare.py [--rounds 2] [--tunnels 2] [--sessions 50] [--sizes 64,1400]
                            [--duration 2] [--out bench-compare]

Each run builds a fresh pair of network namespaces (tests/lab.py): the generator's side (a)
and the LNS's side (b), joined by a veth pair. On side b run FreeRADIUS (without debug output)
and one LNS, which authenticates every session through it (CHAP, users bench0 .. benchN-1,
addresses from the LNS's own pool):

- l2tpns 2.4.1 (Debian's package), configured as tests/radiuslab.py does;
- the l2tpfast LNS (`l2tpfast run`), with [radius] and its defaults otherwise.

`l2tpfast bench` then runs in namespace a, with its sink in namespace b: the same tunnels and
sessions, all calls at once (the setup rate is what the LNS and FreeRADIUS sustain), then a
loss-free search in each direction at each size (--search --direction each), with the LNS's
CPU read from /proc. The LNSes take turns, l2tpns first, A B A B for --rounds rounds, so a
slow minute of this shared machine falls on both. The table gives, for each figure, the median
over the rounds of each LNS and the ratio l2tpfast / l2tpns; the issue's goals are beside it.

The reports of every run are kept in --out (JSON, and the plots when matplotlib is present),
with summary.json. Needs root, l2tpns and freeradius (`make system-deps` installs them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

import lab  # noqa: E402
from radiuslab import RADIUS_SECRET, FreeRadius, L2tpns  # noqa: E402

PASSWORD = "bench-password"
POOL = "10.100.0.0/16"
LNS_ADDRESS = "10.100.0.1"


def ours_config(workdir: Path, pair: lab.NetnsPair, sessions: int) -> Path:
    path = workdir / "l2tpfast.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [node]
            role = "lns"
            listen = "{pair.b_addr}"
            control_socket = "{workdir / "l2tpfast.sock"}"
            [log]
            level = "warning"
            [limits]
            max_sessions = 0
            [dataplane]
            tun_addresses = ["{LNS_ADDRESS}/32"]
            max_sessions = {max(1024, sessions + 16)}
            [ppp]
            auth = ["chap"]
            [lns]
            pool = ["{POOL}"]
            local_address = "{LNS_ADDRESS}"
            [radius]
            servers = ["127.0.0.1"]
            secret = "{RADIUS_SECRET}"
            accounting = false
            """
        )
    )
    return path


class Ours(lab.PeerProcess):
    """`l2tpfast run` as the LNS in namespace b."""

    def __init__(self, pair: lab.NetnsPair, workdir: Path, sessions: int) -> None:
        self.log_path = workdir / "l2tpfast.log"
        config = ours_config(workdir, pair, sessions)
        self.proc: subprocess.Popen[bytes] | None = pair.popen(
            pair.b, [sys.executable, "-m", "l2tpfast", "run", "-c", str(config)], log_path=self.log_path
        )
        deadline = time.monotonic() + 20
        while not (workdir / "l2tpfast.sock").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise lab.LabError(f"l2tpfast did not start:\n{self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            lab.stop_process(self.proc)
            self.proc = None


def one_run(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """One LNS, one `l2tpfast bench` against it; its report."""
    sessions = args.tunnels * args.sessions
    users = [(f"bench{n}", PASSWORD, None) for n in range(sessions)]
    workdir.mkdir(parents=True, exist_ok=True)
    with lab.NetnsPair("l2fcmp", checksum_offload=True) as pair:
        radius = FreeRadius(pair, pair.b, users, workdir=workdir / "radius", debug=False)
        try:
            if name == "l2tpns":
                lns: Any = L2tpns(
                    pair, pair.b, workdir=workdir / "l2tpns", pool=(POOL,), radius_authtypes="chap", debug=1,
                    peer_address=LNS_ADDRESS,
                )  # fmt: skip
            else:
                lns = Ours(pair, workdir, sessions)
            try:
                assert lns.proc is not None
                report = workdir / "report.json"
                pin: list[str] = []
                if args.pin:
                    # The LNS alone on the last CPU, the harness (generator and sink) on the others.
                    last = os.cpu_count() or 1
                    subprocess.run(["taskset", "-a", "-p", "-c", str(last - 1), str(lns.proc.pid)],
                                   check=True, capture_output=True)  # fmt: skip
                    pin = ["taskset", "-c", f"0-{max(0, last - 2)}"]
                command = [*pin,
                    "ip", "netns", "exec", pair.a, sys.executable, "-m", "l2tpfast", "bench",
                    "--lns", pair.b_addr, "--tunnels", str(args.tunnels), "--sessions", str(args.sessions),
                    "--username", "bench{n}", "--password", PASSWORD,
                    "--sink-netns", pair.b, "--sink-address", pair.b_addr,
                    "--size", args.sizes, "--direction", "each", "--search", "--rate", args.start_rate,
                    "--step-factor", str(args.step_factor), "--refine", str(args.refine),
                    "--duration", str(args.duration), "--lns-pid", str(lns.proc.pid),
                    "--label", name, "--json", str(report), "--quiet",
                ]  # fmt: skip
                if args.plots and _has_matplotlib():
                    command += ["--plot", str(workdir / name)]
                with open(workdir / "bench.log", "w") as log:
                    done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=3600)
                if done.returncode != 0:
                    raise RuntimeError(
                        f"l2tpfast bench against {name} exited {done.returncode}:\n"
                        + (workdir / "bench.log").read_text()[-3000:]
                    )
                return json.loads(report.read_text())  # type: ignore[no-any-return]
            finally:
                lns.stop()
        finally:
            radius.stop()


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def figures(report: dict[str, Any]) -> dict[str, float | None]:
    """The compared figures of one run."""
    out: dict[str, float | None] = {"setup_rate": report["setup"]["rate"]}
    for found in report["loss_free"]:
        key = f"{found['direction']}_{found['size']}"
        out[f"{key}_pps"] = found["loss_free_pps"]
        out[f"{key}_cpu_us"] = found.get("cpu_us_per_packet")
        out[f"{key}_bound"] = 1.0 if found["lower_bound"] else 0.0
    return out


ROWS = [
    ("setup_rate", "session setup, sessions/s", ">= 1x"),
    ("down_{size}_pps", "downstream (TUN to L2TP) loss-free pps, {size} B", ">= 2x"),
    ("up_{size}_pps", "upstream (L2TP to TUN) loss-free pps, {size} B", ">= 1x"),
    ("down_{size}_cpu_us", "  LNS CPU per packet at that rate, us (down, {size} B)", "lower is better"),
    ("up_{size}_cpu_us", "  LNS CPU per packet at that rate, us (up, {size} B)", "lower is better"),
]


def table(
    runs: dict[str, list[dict[str, float | None]]], sizes: list[int]
) -> tuple[str, list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []
    keys: list[tuple[str, str, str]] = []
    for key, label, goal in ROWS:
        if "{size}" in key:
            keys += [(key.format(size=s), label.format(size=s), goal) for s in sizes]
        else:
            keys.append((key, label, goal))
    order = {k: i for i, (k, _, _) in enumerate(keys)}
    keys.sort(
        key=lambda k: (0 if k[0] == "setup_rate" else 1 + sizes.index(int(k[0].split("_")[1])), order[k[0]])
    )
    lines = [f"{'figure':<58} {'l2tpns':>12} {'l2tpfast':>12} {'ratio':>7}  goal"]
    lines.append("-" * len(lines[0]))
    for key, label, goal in keys:
        medians = {}
        for name in ("l2tpns", "l2tpfast"):
            values = [r[key] for r in runs[name] if r.get(key) is not None]
            medians[name] = statistics.median(values) if values else None
        a, b = medians["l2tpns"], medians["l2tpfast"]
        ratio = b / a if a and b is not None else None
        met = ""
        if goal.startswith(">=") and ratio is not None:
            met = "met" if ratio >= float(goal[3:-1]) else "NOT met"
        bound = [
            name
            for name in ("l2tpns", "l2tpfast")
            if key.endswith("_pps") and any(r.get(key[:-4] + "_bound") for r in runs[name])
        ]
        note = f" (harness saturated in a run of {', '.join(bound)}: a lower bound)" if bound else ""
        fmt = ",.0f" if key.endswith("pps") or key == "setup_rate" else ".2f"
        lines.append(
            f"{label:<58} {format(a, fmt) if a is not None else '-':>12} "
            f"{format(b, fmt) if b is not None else '-':>12} "
            f"{format(ratio, '.2f') + 'x' if ratio is not None else '-':>7}  {goal} {met}{note}"
        )
        rows.append({"figure": key, "label": label, "l2tpns": a, "l2tpfast": b, "ratio": ratio, "goal": goal,
                     "met": met, "lower_bound_in": bound})  # fmt: skip
    return "\n".join(lines), rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2, help="runs of each LNS, alternating (2)")
    parser.add_argument("--tunnels", type=int, default=2)
    parser.add_argument("--sessions", type=int, default=50, help="per tunnel (50)")
    parser.add_argument("--sizes", default="64,1400", help="IP packet sizes (64,1400)")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds a step (2)")
    parser.add_argument("--start-rate", default="50k", help="first rate of each search (50k)")
    parser.add_argument("--step-factor", type=float, default=1.5)
    parser.add_argument("--refine", type=int, default=3)
    parser.add_argument("--out", default="bench-compare", help="directory for the reports")
    parser.add_argument("--no-plots", dest="plots", action="store_false")
    parser.add_argument(
        "--no-pin", dest="pin", action="store_false",
        help="let the LNS and the harness share every CPU (default: the LNS alone on the last one)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench-compare needs root (network namespaces, TUN devices)", file=sys.stderr)
        return 2
    missing = [tool for tool in ("l2tpns", "freeradius") if shutil.which(tool) is None]
    if missing:
        print(f"missing: {', '.join(missing)}; `make system-deps` installs them", file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    runs: dict[str, list[dict[str, float | None]]] = {"l2tpns": [], "l2tpfast": []}
    started = time.monotonic()
    for round_no in range(1, args.rounds + 1):
        for name in ("l2tpns", "l2tpfast"):
            print(f"round {round_no}/{args.rounds}: {name} ...", flush=True)
            report = one_run(name, args, out / f"round{round_no}-{name}")
            got = figures(report)
            runs[name].append(got)
            print(
                f"  setup {got['setup_rate']:,.0f}/s; "
                + "; ".join(
                    f"{k[:-4]} {v:,.0f} pps" for k, v in got.items() if k.endswith("_pps") and v is not None
                ),
                flush=True,
            )
    text, rows = table(runs, sizes)
    header = (
        f"l2tpfast / l2tpns, {args.tunnels * args.sessions} sessions ({args.tunnels} tunnels), "
        f"median of {args.rounds} alternating rounds, {args.duration:g} s steps, "
        "loss-free = at most 0.1% lost; "
        f"{time.monotonic() - started:.0f} s in all"
    )
    print("\n" + header + "\n" + text)
    (out / "summary.json").write_text(
        json.dumps({"header": header, "table": rows, "runs": runs, "args": vars(args)}, indent=2) + "\n"
    )
    (out / "table.txt").write_text(header + "\n" + text + "\n")
    print(f"\nreports in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
