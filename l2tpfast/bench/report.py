"""The end of a run: the table, the JSON file, and the plots (with the ``plot`` extra)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _fmt(value: Any, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def table(report: dict[str, Any]) -> str:
    """A text table of the setup, every step, and the loss-free rates found."""
    lines = []
    setup = report.get("setup")
    if setup:
        lat = setup.get("latency_ms") or {}
        lines.append(
            f"sessions: {setup['up']}/{setup['sessions']} up in {setup['seconds']:.2f} s "
            f"({setup['rate']:,.0f}/s); setup latency ms p50 {_fmt(lat.get('p50'), '.1f')} "
            f"p90 {_fmt(lat.get('p90'), '.1f')} p99 {_fmt(lat.get('p99'), '.1f')} "
            f"max {_fmt(lat.get('max'), '.1f')}"
        )
        if setup.get("failures"):
            lines.append(f"  failed: {setup['failures']}")
    header = (
        f"{'size':>5} {'dir':>4} {'offered/s':>10} {'up pps':>10} {'up Mbit/s':>9} {'up loss':>8} "
        f"{'down pps':>10} {'down Mbit/s':>11} {'down loss':>9} {'late':>6} {'rtt p50':>8} {'rtt p99':>8} "
        f"{'LNS CPU':>7} {'us/pkt':>7}  note"
    )
    lines += [header, "-" * len(header)]
    for s in report.get("steps", []):
        up, down, rtt = s.get("up"), s.get("down"), s.get("rtt_us") or {}
        late = sum(x["late"] for x in (up, down) if x)
        lines.append(
            f"{s['size']:>5} {s['direction']:>4} {s['rate']:>10,.0f} "
            f"{_fmt(up and up['delivered_pps']):>10} {_fmt(up and up['delivered_mbps'], '.1f'):>9} "
            f"{_fmt(up and 100 * up['loss'], '.3f') + ('%' if up else ''):>8} "
            f"{_fmt(down and down['delivered_pps']):>10} {_fmt(down and down['delivered_mbps'], '.1f'):>11} "
            f"{_fmt(down and 100 * down['loss'], '.3f') + ('%' if down else ''):>9} {late:>6} "
            f"{_fmt(rtt.get('p50')):>8} {_fmt(rtt.get('p99')):>8} "
            f"{_percent(s.get('lns_cpu_percent')):>7} "
            f"{_fmt(s.get('lns_cpu_us_per_packet'), '.2f'):>7}  "
            + ("harness-limited" if s["harness_limited"] else ("" if s["loss_free"] else "loss"))
        )
    lines.append("rtt in microseconds (probes echoed by the sink); late: arrived after a later packet")
    for found in report.get("loss_free", []):
        lines.append(
            f"loss-free {found['direction']:>4} at {found['size']} B: {found['loss_free_pps']:,.0f} pps "
            f"({found['loss_free_mbps']:.1f} Mbit/s), "
            f"LNS {_fmt(found.get('cpu_us_per_packet'), '.2f')} us/packet"
            + ("  (a lower bound: the harness saturated first)" if found["lower_bound"] else "")
        )
    if report.get("sessions_lost"):
        lines.append(f"sessions closed during the run: {report['sessions_lost']}")
    return "\n".join(lines)


def write_json(report: dict[str, Any], path: str | Path) -> None:
    """The report as JSON at ``path`` (its folder made if missing: a long run never loses it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def _save(plt: Any, fig: Any, prefix: Path, kind: str) -> Path:
    fig.tight_layout()
    path = prefix.with_name(f"{prefix.name}-{kind}.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot(report: dict[str, Any], prefix: str | Path) -> list[Path]:
    """PNG plots beside ``prefix``: offered vs delivered rate, and round-trip percentiles.

    Needs matplotlib (``pip install l2tpfast[plot]``); raises ImportError naming it otherwise."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("plots need matplotlib: pip install 'l2tpfast[plot]'") from exc
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    steps = report.get("steps", [])
    series: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for s in steps:
        for d in ("up", "down"):
            if d in s:
                series.setdefault((s["size"], d), []).append(s)
    written = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    top = 0.0
    for (size, d), rows in sorted(series.items()):
        rows = sorted(rows, key=lambda r: r[d]["offered_pps"])
        xs = [r[d]["offered_pps"] / 1e3 for r in rows]
        ys = [r[d]["delivered_pps"] / 1e3 for r in rows]
        top = max(top, *xs, *ys)
        ax.plot(xs, ys, marker="o", label=f"{d}stream, {size} B")
    ax.plot([0, top], [0, top], color="grey", linestyle=":", linewidth=1, label="offered = delivered")
    ax.set_xlabel("offered, thousand packets/s")
    ax.set_ylabel("delivered, thousand packets/s")
    ax.set_title(_title(report, "offered vs delivered"))
    ax.grid(True, alpha=0.3)
    ax.legend()
    written.append(_save(plt, fig, prefix, "rate"))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for n, ((size, d), rows) in enumerate(sorted(series.items())):
        rows = sorted((r for r in rows if r.get("rtt_us")), key=lambda r: r["rate"])
        if not rows:
            continue
        xs = [r["rate"] / 1e3 for r in rows]
        for key, style in (("p50", "-"), ("p99", "--")):
            ax.plot(
                xs, [r["rtt_us"][key] for r in rows], style, marker="o", color=colours[n % len(colours)],
                label=f"{d}stream {size} B, {key}",
            )  # fmt: skip
    ax.set_xlabel("offered, thousand packets/s")
    ax.set_ylabel("round-trip time, microseconds")
    ax.set_yscale("log")
    ax.set_title(_title(report, "latency under load"))
    ax.grid(True, alpha=0.3, which="both")
    ax.legend()
    written.append(_save(plt, fig, prefix, "latency"))
    return written


def _title(report: dict[str, Any], what: str) -> str:
    o = report.get("options", {})
    label = o.get("extra", {}).get("label") or o.get("lns", "")
    return f"{label}: {what}, {o.get('tunnels', 0) * o.get('sessions', 0)} sessions"
