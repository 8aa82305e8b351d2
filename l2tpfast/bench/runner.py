"""``l2tpfast bench``: bring up sessions through an LNS, offer traffic, say what came through.

A run has two phases. Setup: :class:`~l2tpfast.bench.lac.BenchLac` opens the tunnels and
places the calls at the setup rate; each comes up with PPP. Traffic: one or more steps, each a
fixed offered rate for a fixed time, in one direction or both:

- upstream, the generator's :class:`~l2tpfast._dataplane.LoadGenerator` sends through every
  session (round robin) to the sink's address; the sink counts what the LNS delivered;
- downstream, the sink sends to every session's address; the generator's receive loop counts
  what the LNS delivered into the sessions.

A small share of the upstream packets are probes the sink echoes back down the same session;
their round trip on the generator's clock gives the latency percentiles. (A downstream-only
step still sends the probes upstream, ``probe_rate`` a second.) ``search`` steps the rate up by
``step_factor`` until a step loses more than ``max_loss`` (in each of ``trials`` tries), then
halves the interval between the last good and the first bad rate ``refine`` times: the highest
good rate is the loss-free rate.

The harness knows when it is the limit: a sender that reached less than 97% of the rate it was
asked for, or a receive socket (the generator's or the sink's) that dropped datagrams it could
not read in time, marks the step "harness-limited", and a search stops there; its result is
then a lower bound, said so.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from l2tpfast._dataplane import LOAD_TOTALS, LoadCounter, LoadGenerator
from l2tpfast.bench.lac import BenchLac
from l2tpfast.bench.sink import SinkClient, self_cpu, socket_drops
from l2tpfast.bench.stats import histogram_percentiles, mbits, sample_percentiles

#: A sender that reached less than this share of its rate could not keep up.
KEPT_UP = 0.97
DIRECTIONS = ("up", "down", "both", "each")  # each: up, then down, as separate steps


@dataclass
class BenchOptions:
    lns: str
    lns_port: int = 1701
    listen: str = "0.0.0.0"
    tunnels: int = 1
    sessions: int = 10  # per tunnel
    setup_rate: float = 0.0  # calls a second; 0: all at once
    setup_timeout: float = 60.0
    username: str = "bench"
    password: str = "bench"
    secret: str | None = None
    sink: str | None = None  # HOST:PORT of a bench-sink's control; None: start one here
    sink_netns: str | None = None  # start it in this network namespace
    sink_address: str = ""  # where upstream packets go: the sink host's address behind the LNS
    sink_port: int = 47000
    direction: str = "both"
    sizes: tuple[int, ...] = (512,)  # IP octets
    rates: tuple[float, ...] = (10000.0,)  # packets a second each way; with search: the first
    duration: float = 5.0
    search: bool = False
    step_factor: float = 1.5
    refine: int = 3
    trials: int = 2  # tries of a search step before its loss counts
    max_rate: float = 5e6
    max_loss: float = 0.001  # a step losing at most this share is loss-free
    probe_rate: float = 200.0
    lns_pids: tuple[int, ...] = ()
    lns_processes: tuple[str, ...] = ()  # names, found on the sink's host
    batch: int = 64
    burst: int = 32  # packets in a row to one session (the sink sends each run as one GSO message)
    drain: float = 0.5
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # copied into the report (the lab's labels)

    def check(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"--direction {self.direction!r}: one of {', '.join(DIRECTIONS)}")
        if self.tunnels < 1 or self.sessions < 1:
            raise ValueError("--tunnels and --sessions are at least 1")
        for size in self.sizes:
            if not 52 <= size <= 2048:
                raise ValueError(f"--size {size}: 52..2048 octets of IP (28 of headers, 24 of ours)")
        try:
            ipaddress.IPv4Address(self.sink_address)
        except ValueError:
            raise ValueError(
                f"--sink-address {self.sink_address!r}: the IPv4 address of the sink's host behind the LNS"
            ) from None
        if self.duration <= 0 or not self.rates or min(self.rates) <= 0:
            raise ValueError("--duration and every --rate must be above 0")


def _say(*args: Any) -> None:
    print(*args, flush=True)


class Bench:
    """One run: setup, then the steps; ``report`` is what it found."""

    def __init__(self, options: BenchOptions) -> None:
        options.check()
        self.o = options
        total = options.tunnels * options.sessions
        self.counter = LoadCounter(total)
        self.lac = BenchLac(
            options.lns,
            lns_port=options.lns_port,
            listen=options.listen,
            sessions=total,
            load_counter=self.counter,
            username=options.username,
            password=options.password,
            secret=options.secret,
            batch=options.batch,
        )
        self.sink: SinkClient | None = None
        self.generator: LoadGenerator | None = None
        self.report: dict[str, Any] = {"options": asdict(options), "steps": [], "loss_free": []}

    # --- the sink ------------------------------------------------------------------------

    def _start_sink(self) -> SinkClient:
        if self.o.sink:
            import socket

            host, _, port = self.o.sink.rpartition(":")
            conn = socket.create_connection((host.strip("[]"), int(port)), timeout=30)
            conn.settimeout(120)
            reader, writer = conn.makefile("r"), conn.makefile("w")

            def close_tcp() -> None:
                reader.close()
                writer.close()
                conn.close()

            return SinkClient(reader, writer, close_tcp)
        command = [sys.executable, "-m", "l2tpfast", "bench-sink"]
        if self.o.sink_netns:
            command = ["ip", "netns", "exec", self.o.sink_netns, *command]
        proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        assert proc.stdin is not None and proc.stdout is not None

        def close_child() -> None:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

        _say(f"sink: {shlex.join(command)} (pid {proc.pid})")
        return SinkClient(proc.stdout, proc.stdin, close_child)

    # --- the run -------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        o = self.o
        await self.lac.start()
        try:
            await self._setup()
            if not self.lac.up:
                raise RuntimeError("no session came up: nothing to measure")
            self.sink = await asyncio.to_thread(self._start_sink)
            addresses = [str(c.address) for c in self.lac.up]
            opened = await asyncio.to_thread(
                self.sink.request,
                "open",
                port=o.sink_port,
                sessions=addresses,
                generator_port=o.sink_port,
                lns_pids=list(o.lns_pids),
                lns_names=list(o.lns_processes),
                batch=o.batch,
            )
            self.report["lns_pids"] = opened.get("lns_pids", list(o.lns_pids))
            if o.lns_processes:
                _say(f"LNS processes {', '.join(o.lns_processes)}: pids {self.report['lns_pids']}")
            self.generator = LoadGenerator(self.lac.fileno(), len(self.lac.up), self.lac.path, o.batch)
            sink_ip = ipaddress.IPv4Address(o.sink_address).packed
            for call in self.lac.up:
                assert call.address is not None
                self.generator.set_session(
                    call.index, call.address.packed, sink_ip, o.sink_port, o.sink_port, call.slot
                )
            await asyncio.sleep(0.2)
            for size in o.sizes:
                directions = ("up", "down") if o.direction == "each" else (o.direction,)
                for direction in directions:
                    if o.search:
                        await self._search(size, direction)
                    else:
                        for rate in o.rates:
                            await self._step(rate, size, direction)
            self.report["sessions_lost"] = self.lac.sessions_lost()
            return self.report
        finally:
            if self.sink is not None:
                await asyncio.to_thread(self.sink.close)
            await self.lac.close()

    async def _setup(self) -> None:
        o = self.o
        total = o.tunnels * o.sessions
        _say(
            f"setup: {o.tunnels} tunnel(s) x {o.sessions} session(s) to {o.lns} port {o.lns_port}, "
            f"{'all at once' if not o.setup_rate else f'{o.setup_rate:g} calls/s'}"
        )
        task = asyncio.ensure_future(self.lac.setup(o.tunnels, o.sessions, o.setup_rate, o.setup_timeout))
        while not task.done():
            await asyncio.wait([task], timeout=1.0)
            if o.progress and not task.done():
                _say(f"  {len(self.lac.up)}/{total} up, {len(self.lac.calls)} placed")
        result = task.result()
        setup: dict[str, Any] = {
            "sessions": total,
            "placed": result.placed,
            "up": result.up,
            "failed": result.failed,
            "failures": result.failures,
            "seconds": round(result.seconds, 4),
            "rate": round(result.rate, 1),
            "latency_ms": sample_percentiles(result.latencies),
        }
        self.report["setup"] = setup
        lat = setup["latency_ms"] or {}
        _say(
            f"setup: {result.up}/{total} sessions up in {result.seconds:.2f} s = {result.rate:.0f}/s; "
            f"latency p50 {lat.get('p50', 0):.1f} ms p99 {lat.get('p99', 0):.1f} ms "
            f"max {lat.get('max', 0):.1f} ms" + (f"; failed: {result.failures}" if result.failures else "")
        )

    async def _search(self, size: int, direction: str) -> None:
        o = self.o
        good: dict[str, Any] | None = None
        bad: dict[str, Any] | None = None
        rate = o.rates[0]
        steps: list[dict[str, Any]] = []
        while rate <= o.max_rate:
            step = await self._trial(rate, size, direction, steps)
            if step["harness_limited"] or not step["loss_free"]:
                bad = step
                break
            good = step
            rate *= o.step_factor
        low = good["rate"] if good else 0.0
        # Above a harness-limited step nothing is known; below it the bisection goes on, so the
        # result comes as close to the harness's own limit as the LNS allows.
        saturated = bad if bad is not None and bad["harness_limited"] else None
        lns_lost = bad is not None and not bad["harness_limited"]
        if bad is not None:
            high = bad["rate"]
            for _ in range(o.refine):
                mid = (low + high) / 2 if low else high / 2
                step = await self._trial(mid, size, direction, steps)
                if step["harness_limited"]:
                    saturated, high = step, mid
                elif step["loss_free"]:
                    good, low = step, mid
                else:
                    lns_lost, high = True, mid
        # A lower bound unless the LNS itself lost packets at a rate the harness could offer.
        limited = saturated is not None and not lns_lost
        found = {
            "size": size,
            "direction": direction,
            "loss_free_pps": round(good["rate"], 1) if good else 0.0,
            "loss_free_mbps": round(mbits(good["rate"], size), 2) if good else 0.0,
            "lower_bound": limited,
            "harness_note": saturated["notes"] if limited and saturated else [],
            "steps": [s["rate"] for s in steps],
            "cpu_us_per_packet": good["lns_cpu_us_per_packet"] if good else None,
        }
        self.report["loss_free"].append(found)
        _say(
            f"loss-free {direction} at {size} B: {found['loss_free_pps']:.0f} pps "
            f"({found['loss_free_mbps']:.1f} Mbit/s)"
            + ("; the harness saturated first: a lower bound" if limited else "")
        )

    async def _trial(
        self, rate: float, size: int, direction: str, steps: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """A search's step at ``rate``; a loss is confirmed by a second try before it counts
        (one burst of a shared machine's noise must not end a search)."""
        step = await self._step(rate, size, direction)
        steps.append(step)
        for _ in range(self.o.trials - 1):
            if step["loss_free"] or step["harness_limited"]:
                break
            step = await self._step(rate, size, direction)
            steps.append(step)
        return step

    async def _step(self, rate: float, size: int, direction: str) -> dict[str, Any]:
        o = self.o
        assert self.sink is not None and self.generator is not None
        up_rate = rate if direction in ("up", "both") else 0.0
        down_rate = rate if direction in ("down", "both") else 0.0
        # Probes ride the upstream load; without one they are a small stream of their own.
        gen_rate = up_rate or o.probe_rate
        probe_every = max(1, round(gen_rate / o.probe_rate)) if o.probe_rate > 0 else 0
        self.counter.reset()
        self.generator.reset()
        drops0 = socket_drops(self.lac.fileno())
        cpu0 = self_cpu()
        await asyncio.to_thread(
            self.sink.request, "start", rate=down_rate, size=size, seconds=o.duration, burst=o.burst
        )
        started = time.monotonic()
        sender = asyncio.ensure_future(
            asyncio.to_thread(self.generator.run, gen_rate, size, o.duration, probe_every, o.burst)
        )
        last = (started, 0, 0, 0, 0)
        while not sender.done():
            await asyncio.wait([sender], timeout=1.0)
            if o.progress and not sender.done():
                peek = await asyncio.to_thread(self.sink.request, "peek")
                now = time.monotonic()
                sent_up, got_down = int(self.generator.stats[0]), int(self.counter.totals[0])
                dt = now - last[0]
                _say(
                    f"  {size} B {direction} {rate:,.0f}/s  t={now - started:4.1f}s  "
                    f"up {(sent_up - last[1]) / dt:>10,.0f} sent {(peek['received'] - last[2]) / dt:>10,.0f} "
                    f"delivered  down {(peek['sent'] - last[3]) / dt:>10,.0f} sent "
                    f"{(got_down - last[4]) / dt:>10,.0f} delivered"
                )
                last = (now, sent_up, peek["received"], peek["sent"], got_down)
        sent, send_seconds = sender.result()
        await asyncio.sleep(o.drain)  # what is still in queues and reorder buffers arrives
        far = await asyncio.to_thread(self.sink.request, "stop")
        elapsed = time.monotonic() - started
        gen_cpu = self_cpu() - cpu0
        gen_drops = socket_drops(self.lac.fileno()) - drops0
        totals = {n: int(v) for n, v in zip(LOAD_TOTALS, self.counter.totals, strict=True)}
        notes: list[str] = []
        result: dict[str, Any] = {"rate": rate, "size": size, "direction": direction, "seconds": o.duration}
        # What arrived each way: counted by the sink (upstream) and by the generator (downstream).
        arrived = {"up": far["received"], "down": totals}
        for name, offered_rate, sent_n, seconds, drops in (
            ("up", up_rate, sent, send_seconds, far["socket_drops"]),
            ("down", down_rate, far["sent"], far["send_seconds"], gen_drops),
        ):
            if offered_rate <= 0:
                continue
            got, octets = arrived[name]["packets"], arrived[name]["octets"]
            offered_pps = sent_n / seconds if seconds > 0 else 0.0
            loss = 1.0 - got / sent_n if sent_n else 1.0
            delivered_pps = got / seconds if seconds > 0 else 0.0
            result[name] = {
                "sent": sent_n,
                "delivered": got,
                "octets": octets,  # IP octets delivered
                "offered_pps": round(offered_pps, 1),
                "delivered_pps": round(delivered_pps, 1),
                "delivered_mbps": round(octets * 8 / seconds / 1e6 if seconds > 0 else 0.0, 2),
                "loss": round(max(loss, 0.0), 6),
                "late": arrived[name]["late"],
            }
            who = "generator" if name == "up" else "sink"
            if offered_pps < KEPT_UP * offered_rate:
                notes.append(
                    f"the {who} sent {offered_pps:,.0f}/s of {offered_rate:,.0f}/s asked: it saturated"
                )
            if drops > 0:
                reader = "sink" if name == "up" else "generator"
                notes.append(f"the {reader}'s socket dropped {drops} datagrams it could not read in time")
        lns_cpu = far.get("lns_cpu")
        delivered = sum(result[d]["delivered"] for d in ("up", "down") if d in result)
        result.update(
            {
                "rtt_us": histogram_percentiles(self.counter.histogram),
                "probes_echoed": totals["echoes"],
                "lns_cpu_seconds": round(lns_cpu, 3) if lns_cpu is not None else None,
                "lns_cpu_percent": round(100 * lns_cpu / far["seconds"], 1) if lns_cpu is not None else None,
                "lns_cpu_us_per_packet": (
                    round(1e6 * lns_cpu / delivered, 3) if lns_cpu is not None and delivered else None
                ),
                "generator_cpu_percent": round(100 * gen_cpu / elapsed, 1),
                "sink_cpu_percent": round(100 * far["cpu"] / elapsed, 1),
                "foreign": totals["foreign"] + far["received"]["foreign"],
                "notes": notes,
                "harness_limited": bool(notes),
            }
        )
        result["loss_free"] = all(result[d]["loss"] <= o.max_loss for d in ("up", "down") if d in result)
        self.report["steps"].append(result)
        _say(_step_line(result))
        return result


def _step_line(s: dict[str, Any]) -> str:
    parts = [f"step {s['size']} B {s['direction']} {s['rate']:,.0f}/s:"]
    for d in ("up", "down"):
        if d in s:
            x = s[d]
            parts.append(
                f"{d} {x['delivered_pps']:,.0f}/s of {x['offered_pps']:,.0f}/s "
                f"({x['delivered_mbps']:.1f} Mbit/s, loss {100 * x['loss']:.3f}%, late {x['late']})"
            )
    rtt = s.get("rtt_us")
    if rtt:
        parts.append(f"rtt p50 {rtt['p50']:.0f} us p99 {rtt['p99']:.0f} us")
    if s.get("lns_cpu_percent") is not None:
        parts.append(f"LNS CPU {s['lns_cpu_percent']:.0f}% {s['lns_cpu_us_per_packet']} us/pkt")
    if s["notes"]:
        parts.append("HARNESS-LIMITED: " + "; ".join(s["notes"]))
    return " ".join(parts)


def run_bench(options: BenchOptions) -> dict[str, Any]:
    if os.geteuid() != 0:
        _say("note: not root: socket buffers stay at the kernel's maximum (net.core.rmem_max)")
    return asyncio.run(Bench(options).run())
