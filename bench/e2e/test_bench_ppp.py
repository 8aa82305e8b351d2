"""End to end with PPP: 100 sessions from the LAC namespace to the LNS's TUN device and back.

Our LAC and our LNS run as daemons in two namespaces (``ppp_lab.PppLab``): 100 PPP sessions
with CHAP and IPCP, each with its own pool address. ``relay mblast`` then sends UDP datagrams
flat out for a few seconds, one direction at a time:

- upstream: from the 100 session addresses in the LAC namespace to the LNS's address; the LAC
  reads them from its TUN device, routes each by source address into its session, the LNS
  takes the PPP framing off and writes the IP packet to its TUN device;
- downstream: from the LNS namespace to the 100 session addresses; the LNS reads its TUN
  device, routes by destination, the LAC writes to its TUN device.

The figure is what came out of the far TUN device (the daemon's ``tun_tx`` counter) per second,
over the steady middle of the run. Beside it, in the same run, the raw forwarding ceiling:
the C relay (``relay relay``: recvmmsg + sendmmsg, no protocol work) on one CPU with a
prefilled queue, as in ``test_bench_relay_baseline.py``. Both daemons, the generator and the
kernel's UDP and TUN work share the machine's CPUs here, so the end-to-end figure includes
two forwarding hops (LAC and LNS) and the kernel's cost on both sides; the ratio says how much
of one raw relay's rate the whole PPP path delivers. Reported, never asserted.

Knobs: L2TPFAST_BENCH_SIZES (default "64,1400"), L2TPFAST_BENCH_PPP_SESSIONS (default 100),
L2TPFAST_BENCH_PPP_SECONDS (default 4).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import e2e_common as common  # bench/e2e/e2e_common.py, on sys.path through conftest.py
import pytest
from ppp_lab import LNS_ADDRESS, SINK_PORT, PppLab, parse_json_line, tun_counts

SESSIONS = int(os.environ.get("L2TPFAST_BENCH_PPP_SESSIONS", "100"))
SECONDS = float(os.environ.get("L2TPFAST_BENCH_PPP_SECONDS", "2"))
RATES = tuple(
    int(r)
    for r in os.environ.get(
        "L2TPFAST_BENCH_PPP_RATES", "25000,50000,100000,150000,200000,300000,400000"
    ).split(",")
)


def _direction(lab: PppLab, relay: Path, size: int, upstream: bool, rate: int) -> dict[str, Any]:
    """One step: ``rate`` datagrams a second one way for SECONDS; what the far sink received."""
    far = "lns" if upstream else "lac"
    sink = lab.exec(
        far, [str(relay), "recv", str(SINK_PORT), "64", "1000000000", str(SECONDS + 3), "700"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.3)
    addresses = ",".join(lab.addresses)
    if upstream:
        args = [str(relay), "mblast", LNS_ADDRESS, str(SINK_PORT), str(size), str(SECONDS), "32", addresses]
    else:
        args = [str(relay), "mblast", addresses, str(SINK_PORT), str(size), str(SECONDS), "32", LNS_ADDRESS]
    before = tun_counts(lab.status(far))[0]
    gen = lab.exec("lac" if upstream else "lns", [*args, str(rate)], stdout=subprocess.PIPE)
    sent = parse_json_line(gen.communicate(timeout=SECONDS + 30)[0])
    got = parse_json_line(sink.communicate(timeout=SECONDS + 30)[0])
    tun_out = tun_counts(lab.status(far))[0] - before
    loss = 1 - got["packets"] / sent["packets"] if sent["packets"] else 1.0
    return {"offered_pps": sent["pps"], "sent": sent["packets"], "sink": got["packets"], "tun_out": tun_out,
            "loss": loss, "delivered_pps": sent["pps"] * (1 - loss)}  # fmt: skip


def _search(lab: PppLab, relay: Path, size: int, upstream: bool) -> dict[str, Any]:
    """Step the offered rate up until the loss passes 1%; the highest step with at most 0.1% is
    the loss-free rate, the highest delivered rate is the saturated one."""
    steps = []
    for rate in RATES:
        step = _direction(lab, relay, size, upstream, rate)
        steps.append(step)
        if step["loss"] > 0.01:
            break
    loss_free = max((s["offered_pps"] for s in steps if s["loss"] <= 0.001), default=0.0)
    return {
        "loss_free_pps": loss_free,
        "max_delivered_pps": max(s["delivered_pps"] for s in steps),
        "steps": steps,
    }


def _ceiling(relay: Path, size: int) -> float:
    rnd = common.Round(relay, size, common.packets_for(size, 200_000, 100_000))
    result = rnd.run(
        [*common.pin(), str(relay), "relay", f"fd:{rnd.rx.fileno()}", "127.0.0.1", str(rnd.sink_port),
         str(common.BATCH), str(rnd.packets)]
    )  # fmt: skip
    return float(result["pps"])


@pytest.mark.parametrize("size", common.SIZES)
def test_ppp_end_to_end(size: int, benchmark: Any) -> None:
    common.require_root("network namespaces, TUN devices and SO_RCVBUFFORCE need root")
    relay = common.build_baselines()["relay"]
    ceiling = _ceiling(relay, size)
    with (
        tempfile.TemporaryDirectory(prefix="l2tpfast-bench-ppp-") as tmp,
        PppLab(SESSIONS, Path(tmp), prefix="l2f-bppp") as lab,
    ):
        up = _search(lab, relay, size, upstream=True)
        down = _search(lab, relay, size, upstream=False)
        setup = lab.setup_seconds
    ceiling_after = _ceiling(relay, size)
    raw = (ceiling + ceiling_after) / 2
    benchmark.extra_info.update({"up": up, "down": down, "ceiling_pps": raw, "setup_seconds": setup})
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(
        f"\nPPP end to end, {SESSIONS} sessions, {size} B: sessions up in {setup:.2f} s "
        f"({SESSIONS / setup:.0f}/s)"
    )
    for name, r in (("upstream   LAC ns -> LNS TUN", up), ("downstream LNS ns -> LAC TUN", down)):
        steps = ", ".join(f"{s['offered_pps'] / 1e3:.0f}k:{100 * s['loss']:.2f}%" for s in r["steps"])
        print(
            f"  {name}: loss-free {r['loss_free_pps'] / 1e6:.3f} Mpps "
            f"({r['loss_free_pps'] / raw:.2f}x the ceiling), "
            f"at most {r['max_delivered_pps'] / 1e6:.3f} Mpps delivered; steps (offered:loss) {steps}"
        )
    print(
        f"  raw ceiling, C relay (recvmmsg + sendmmsg, no protocol work) on one CPU, same run: "
        f"{raw / 1e6:.3f} Mpps (before {ceiling / 1e6:.3f}, after {ceiling_after / 1e6:.3f})"
    )
