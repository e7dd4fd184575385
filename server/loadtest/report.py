"""What a load test says at the end: a JSON document, a text summary, an HTML report.

:func:`summarize` turns an :class:`~.engine.Outcome` into the JSON document (the
``--json`` output, whose shape ``docs/loadtest.md`` describes); the text summary and
the HTML report are both rendered from that document, so the three always agree.
The HTML report is one self-contained file: inline CSS and SVG charts, no script,
no external resource, no dependency.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

from .engine import Outcome
from .stats import Histogram

__all__ = ["FORMAT_VERSION", "is_ok", "render_html", "render_text", "summarize"]

FORMAT_VERSION = 1


def summarize(outcome: Outcome, *, loop: str) -> dict[str, Any]:
    """The JSON document of a run (every number is plain JSON; times in seconds
    since the run began, latencies in milliseconds)."""
    o, stats, cpu = outcome.options, outcome.stats, outcome.cpu
    phases = outcome.phases
    sending = max(1e-9, phases.get("send_end", 0.0) - phases.get("send_start", 0.0))
    messages: dict[str, Any] = dict(outcome.messages)
    messages["sent_per_second"] = round(stats.sent / sending, 2)
    messages["delivered_per_second"] = round(stats.delivered / sending, 2)
    doc: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "run_id": outcome.run_id,
        "targets": list(o.urls),
        "school": outcome.plan.school,
        "settings": {
            "classes": o.classes, "students": o.students, "threads": o.threads,
            "rate": o.rate, "thread_rate": o.thread_rate, "duration": o.duration,
            "warmup": o.warmup,
            "ramp": o.ramp, "storm_at": o.storm_at,
            "storm_fraction": o.storm_fraction if o.storm_at is not None else None,
            "drain": o.drain, "settle": o.settle, "size": o.body_size, "encoding": o.encoding,
            "seed": o.seed},
        "phases": {k: round(v, 3) for k, v in phases.items()},
        "connections": {**outcome.connections, "per_target": outcome.per_target},
        "discussions": outcome.discussions,
        "messages": messages,
        "latency_ms": _latency(stats.latency),
        "steady_latency_ms": _latency(stats.steady_latency),
        "refusals": dict(sorted(stats.refusals.items())),
        "refusals_by_action": {a: dict(sorted(c.items()))
                               for a, c in sorted(stats.refusals_by_action.items())},
        "storm": None if outcome.storm is None else {
            "at": round(outcome.storm["at"], 3),
            "fraction": o.storm_fraction,
            "dropped": int(outcome.storm["dropped"]),
            "reconnected": int(outcome.storm["reconnected"]),
            "recovery_seconds": round(outcome.storm["recovery_seconds"], 3)},
        "drained": outcome.drained,
        "missing": outcome.missing,
        "load_generator": {
            "loop": loop, "cpu_seconds": round(cpu["total"], 3),
            "sending_cpu_seconds": round(cpu["send"], 3),
            # Steady state: the sending phase's CPU over its deliveries (connecting,
            # starting and closing excluded); the generator's cost per delivery.
            "cpu_us_per_delivery": (round(cpu["send"] / cpu["send_deliveries"] * 1e6, 1)
                                    if cpu["send_deliveries"] else None)},
        "notes": list(outcome.notes),
        "timeline": [
            {"t": t, "sent": s.sent, "delivered": s.delivered, "refused": s.refused,
             "connected": s.connected, **{f"{k}_ms": v for k, v in
                                          _latency(s.latency, short=True).items()}}
            for t, s in sorted(stats.seconds.items())],
        "histogram_ms": [{"le": _ms(upper), "count": n}
                         for upper, n in stats.latency.buckets()],
    }
    doc["ok"] = is_ok(doc)
    return doc


def is_ok(doc: dict[str, Any]) -> bool:
    """A run passes when something was delivered and nothing was lost, duplicated,
    re-delivered or mismatched."""
    m = doc["messages"]
    return bool(m["delivered"] > 0 and m["losses"] == 0 and m["duplicates"] == 0
                and m["redelivered"] == 0 and m["mismatched"] == 0)


def _latency(h: Histogram, *, short: bool = False) -> dict[str, float | None]:
    if short:
        return {"p50": _ms(h.quantile(0.5)), "p99": _ms(h.quantile(0.99)),
                "max": _ms(h.max if h.count else None)}
    return {"count": h.count, "mean": _ms(h.mean), "p50": _ms(h.quantile(0.5)),
            "p95": _ms(h.quantile(0.95)), "p99": _ms(h.quantile(0.99)),
            "max": _ms(h.max if h.count else None)}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


# ---------------------------------------------------------------------- text


def render_text(doc: dict[str, Any]) -> str:
    """The human summary printed at the end of a run (a few aligned lines)."""
    c, d, m, lat = doc["connections"], doc["discussions"], doc["messages"], doc["latency_ms"]
    steady = doc["steady_latency_ms"]
    s = doc["settings"]
    targets = doc["targets"]
    lines = [
        f"Préau load test {doc['run_id']}: {d['classes']} class discussions + "
        f"{d['threads']} threads, {c['planned']} users on {len(targets)} server"
        f"{'s' if len(targets) > 1 else ''} ({', '.join(targets)}), "
        f"{s['duration']:g} s of sending",
        _row("connections", f"{c['held']} held of {c['planned']} planned "
                            f"({c['failed']} failed, {c['lost']} lost, "
                            f"{c['reconnections']} reconnections)"),
        _row("messages", f"sent {m['sent']} ({m['sent_per_second']:g}/s), delivered "
                         f"{m['delivered']} ({m['delivered_per_second']:g}/s) of "
                         f"{m['expected']} expected"),
        _row("latency", "  ".join(f"{k} {_fmt_ms(lat[k])}" for k in
                                  ("p50", "p95", "p99", "max"))
             + f"  ({lat['count']} deliveries)"),
        _row("steady", "  ".join(f"{k} {_fmt_ms(steady[k])}" for k in
                                 ("p50", "p95", "p99", "max"))
             + f"  (messages sent after the first {s['warmup']:g} s)"),
        _row("losses", f"{m['losses']}    duplicates {m['duplicates']}    "
                       f"redelivered {m['redelivered']}    mismatched {m['mismatched']}"),
        _row("refusals", ", ".join(f"{code} {n}" for code, n in doc["refusals"].items())
             or "none"),
    ]
    storm = doc["storm"]
    if storm is not None:
        lines.append(_row("storm", f"at {storm['at']:.1f} s: {storm['dropped']} "
                                   f"connections dropped, {storm['reconnected']} back within "
                                   f"{storm['recovery_seconds']:.2f} s"))
    g = doc["load_generator"]
    per = g["cpu_us_per_delivery"]
    lines.append(_row("generator", f"{g['loop']}, {g['cpu_seconds']:.2f} s CPU"
                      + ("" if per is None else f", {per:g} µs per delivery while sending")))
    for note in doc["notes"]:
        lines.append(_row("note", note))
    if not doc["drained"]:
        lines.append(_row("note", "deliveries were still missing when the drain ended"))
    lines.append(_row("result", "OK" if doc["ok"] else "FAILED"))
    return "\n".join(lines) + "\n"


def _row(label: str, text: str) -> str:
    return f"  {label:<12} {text}"


def _fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} ms" if value >= 1 else f"{value * 1000:.0f} µs"


# ---------------------------------------------------------------------- HTML

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:820px;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
pre{background:#f6f6f6;padding:.8em;white-space:pre-wrap}
.ok{color:#17752b}.failed{color:#b3261e}
svg{display:block;margin:.5em 0}svg text{font:11px system-ui,sans-serif;fill:#444}
"""
_W, _H = 780, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 60, 20, 24, 34


def render_html(doc: dict[str, Any]) -> str:
    """A self-contained HTML page: the summary, latency (p50, p99 and max per second,
    log scale) over time with the phases marked, throughput over time, and the
    latency histogram."""
    timeline = doc["timeline"]
    ts = [float(row["t"]) for row in timeline]
    phases = doc["phases"]
    markers = [(phases[k], label) for k, label in
               (("send_start", "sending"), ("send_end", "stop")) if k in phases]
    if doc["storm"] is not None and "send_start" in phases:
        markers.append((phases["send_start"] + doc["storm"]["at"], "storm"))
    latency = _line_chart(
        "End-to-end latency per second (ms, log scale)", ts,
        [("p50", "#1f77b4", [row["p50_ms"] for row in timeline]),
         ("p99", "#d62728", [row["p99_ms"] for row in timeline]),
         ("max", "#bbbbbb", [row["max_ms"] for row in timeline])],
        log=True, markers=markers)
    throughput = _line_chart(
        "Messages per second, and connections", ts,
        [("delivered", "#2ca02c", [float(row["delivered"]) for row in timeline]),
         ("sent", "#ff7f0e", [float(row["sent"]) for row in timeline]),
         ("connections", "#9467bd", [float(row["connected"]) or None for row in timeline])],
        log=False, markers=markers)
    histogram = _histogram([(b["le"], b["count"]) for b in doc["histogram_ms"]])
    verdict = "ok" if doc["ok"] else "failed"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>Préau load test {html.escape(doc['run_id'])}</title>"
        f"<style>{_CSS}</style></head><body>\n"
        f"<h1>Préau load test {html.escape(doc['run_id'])} — "
        f"<span class=\"{verdict}\">{verdict.upper()}</span></h1>\n"
        f"<pre>{html.escape(render_text(doc))}</pre>\n"
        f"<h2>Latency over time</h2>\n{latency}\n"
        f"<h2>Throughput over time</h2>\n{throughput}\n"
        f"<h2>Latency histogram</h2>\n{histogram}\n"
        "<p>Times are seconds since the run began (connections first, then the "
        "discussions' first messages, then sending). Latency is measured from just "
        "before <code>send</code> to the <code>message</code> frame at each "
        "receiver, the sender's own copy included, on one monotonic clock.</p>\n"
        "</body></html>\n")


def _line_chart(title: str, xs: Sequence[float],
                series: Sequence[tuple[str, str, Sequence[float | None]]], *, log: bool,
                markers: Sequence[tuple[float, str]]) -> str:
    values = [v for _, _, vs in series for v in vs if v is not None and (v > 0 or not log)]
    if not xs or not values:
        return "<p>(no data)</p>"
    x_lo, x_hi = 0.0, max([max(xs) + 1, *(x for x, _ in markers)])
    if log:
        y_lo = 10 ** math.floor(math.log10(min(values)))
        y_hi = 10 ** math.ceil(math.log10(max(values)))
        if y_hi <= y_lo:
            y_hi = y_lo * 10
        ticks = [10 ** k for k in range(round(math.log10(y_lo)), round(math.log10(y_hi)) + 1)]
    else:
        y_lo, y_hi = 0.0, _nice(max(values))
        ticks = [y_hi * k / 4 for k in range(5)]

    def x_of(x: float) -> float:
        return _LEFT + (x - x_lo) / (x_hi - x_lo) * (_W - _LEFT - _RIGHT)

    def y_of(y: float) -> float:
        if log:
            f = (math.log10(y) - math.log10(y_lo)) / (math.log10(y_hi) - math.log10(y_lo))
        else:
            f = (y - y_lo) / (y_hi - y_lo)
        return _H - _BOTTOM - f * (_H - _TOP - _BOTTOM)

    parts = [_frame(title)]
    for tick in ticks:
        y = y_of(tick)
        parts.append(f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                     'stroke="#eee"/>'
                     f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f'{_num(tick)}</text>')
    for x in _x_ticks(x_hi):
        parts.append(f'<text x="{x_of(x):.1f}" y="{_H - _BOTTOM + 16}" '
                     f'text-anchor="middle">{_num(x)} s</text>')
    for x, label in markers:
        px = x_of(x)
        parts.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{_TOP}" y2="{_H - _BOTTOM}" '
                     'stroke="#888" stroke-dasharray="4 3"/>'
                     f'<text x="{px + 3:.1f}" y="{_TOP + 10}">{html.escape(label)}</text>')
    for i, (name, color, vs) in enumerate(series):
        # One polyline per run of consecutive seconds with a value: a second without
        # deliveries is a gap in the line, not a slope between its neighbours.
        runs: list[list[str]] = [[]]
        previous: float | None = None
        for x, v in zip(xs, vs, strict=True):
            if v is None or (log and v <= 0) or (previous is not None and x != previous + 1):
                runs.append([])
            if v is not None and (v > 0 or not log):
                runs[-1].append(f"{x_of(x + 0.5):.1f},{y_of(v):.1f}")
            previous = x
        for points in runs:
            if len(points) == 1:
                x_text, y_text = points[0].split(",")
                parts.append(f'<circle cx="{x_text}" cy="{y_text}" r="2" fill="{color}"/>')
            elif points:
                parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6" '
                             f'points="{" ".join(points)}"/>')
        lx = _LEFT + 10 + i * 110
        parts.append(f'<rect x="{lx}" y="{_TOP - 18}" width="12" height="4" '
                     f'fill="{color}"/><text x="{lx + 16}" y="{_TOP - 12}">'
                     f'{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _histogram(bins: Sequence[tuple[float | None, int]]) -> str:
    bars = [(upper, n) for upper, n in bins if upper is not None]
    if not bars:
        return "<p>(no data)</p>"
    top = _nice(max(n for _, n in bars))
    width = (_W - _LEFT - _RIGHT) / len(bars)
    parts = [_frame("Deliveries by latency (ms, log bins)")]
    for k in range(5):
        y = _H - _BOTTOM - k / 4 * (_H - _TOP - _BOTTOM)
        parts.append(f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#eee"/><text x="{_LEFT - 6}" y="{y + 4:.1f}" '
                     f'text-anchor="end">{_num(top * k / 4)}</text>')
    step = max(1, len(bars) // 10)
    for i, (upper, n) in enumerate(bars):
        x = _LEFT + i * width
        h = n / top * (_H - _TOP - _BOTTOM)
        parts.append(f'<rect x="{x + 0.5:.1f}" y="{_H - _BOTTOM - h:.1f}" '
                     f'width="{max(width - 1, 0.5):.1f}" height="{h:.1f}" fill="#1f77b4">'
                     f'<title>≤ {_num(upper)} ms: {n}</title></rect>')
        if i % step == 0:
            parts.append(f'<text x="{x + width:.1f}" y="{_H - _BOTTOM + 16}" '
                         f'text-anchor="middle">{_num(upper)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _frame(title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
            f'viewBox="0 0 {_W} {_H}" role="img" aria-label="{html.escape(title)}">'
            f'<text x="{_W - _RIGHT}" y="{_TOP - 10}" text-anchor="end" '
            f'font-weight="bold">{html.escape(title)}</text>'
            f'<line x1="{_LEFT}" x2="{_LEFT}" y1="{_TOP}" y2="{_H - _BOTTOM}" stroke="#999"/>'
            f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{_H - _BOTTOM}" y2="{_H - _BOTTOM}" '
            'stroke="#999"/>')


def _nice(value: float) -> float:
    """The smallest 1, 2 or 5 × 10^k at or above ``value`` (at least 1)."""
    if value <= 1:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= value)


def _x_ticks(x_hi: float) -> list[float]:
    step = _nice(x_hi / 8)
    return [k * step for k in range(int(x_hi // step) + 1)]


def _num(value: float) -> str:
    if value >= 100 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.3g}"
