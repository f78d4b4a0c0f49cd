"""The load-test report page: summary table and inline-SVG charts, zh-CN by default with English.

No plotting library and no external assets: the page is one self-contained file an operator can
mail around. Charts are polylines drawn from the per-second series of the runner.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["render_html", "svg_chart"]

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e")
_W, _H, _PAD = 760, 260, 48


def _ticks(top: float) -> list[float]:
    if top <= 0:
        return [0.0]
    step = 10 ** len(str(int(top))) / 10
    while top / step > 6:
        step *= 2
    return [i * step for i in range(int(top / step) + 1)]


def svg_chart(title: str, series: Mapping[str, Sequence[tuple[float, float]]], unit: str) -> str:
    """A line chart of ``series`` (label → [(t seconds, value)]) as an ``<svg>`` element."""
    points = [p for values in series.values() for p in values]
    t_max = max((t for t, _ in points), default=1.0) or 1.0
    v_max = max((v for _, v in points), default=1.0) * 1.1 or 1.0
    sx = (_W - 2 * _PAD) / t_max
    sy = (_H - 2 * _PAD) / v_max
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" role="img">']
    parts.append(f'<text x="{_PAD}" y="20" font-weight="bold">{html.escape(title)}</text>')
    for v in _ticks(v_max):
        y = _H - _PAD - v * sy
        parts.append(f'<line x1="{_PAD}" x2="{_W - _PAD}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{_PAD - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{v:,.0f}</text>')
    for t in _ticks(t_max):
        x = _PAD + t * sx
        parts.append(
            f'<text x="{x:.1f}" y="{_H - _PAD + 16}" text-anchor="middle" font-size="11">{t:.0f}s</text>'
        )
    parts.append(
        f'<text x="{_W - _PAD}" y="{_H - 8}" text-anchor="end" font-size="11">{html.escape(unit)}</text>'
    )
    for i, (label, values) in enumerate(series.items()):
        color = _COLORS[i % len(_COLORS)]
        line = " ".join(f"{_PAD + t * sx:.1f},{_H - _PAD - v * sy:.1f}" for t, v in values)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{line}"/>')
        y = 40 + 16 * i
        parts.append(
            f'<text x="{_W - _PAD - 150}" y="{y}" fill="{color}" font-size="12">{html.escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


_LABELS = (
    ("target", "目标", "target"),
    ("users", "并发用户", "users"),
    ("duration_s", "持续时间 (s)", "duration (s)"),
    ("sent", "已发送事件", "events sent"),
    ("accepted", "已接收事件", "events accepted"),
    ("rejected", "被拒事件", "events rejected"),
    ("landed", "入库事件 (FINAL)", "events in ClickHouse (FINAL)"),
    ("lost", "丢失", "lost"),
    ("duplicated", "重复", "duplicated"),
    ("ingest_events_per_s", "接入速率 (事件/秒)", "ingest rate (events/s)"),
    ("sustained_events_per_s", "端到端持续速率 (事件/秒)", "sustained end-to-end rate (events/s)"),
    ("latency_p50_ms", "延迟 P50 (ms)", "latency p50 (ms)"),
    ("latency_p95_ms", "延迟 P95 (ms)", "latency p95 (ms)"),
    ("latency_p99_ms", "延迟 P99 (ms)", "latency p99 (ms)"),
    ("verdict", "结论", "verdict"),
)


def _both(zh: str, en: str) -> str:
    return f'<span lang="zh-CN">{html.escape(zh)}</span><span lang="en">{html.escape(en)}</span>'


def _cpu_table(cpu: Mapping[str, Any]) -> str:
    """CPU seconds and CPU-µs per landed event of each process role (empty without figures)."""
    per_event = cpu.get("us_per_event", {})
    if not per_event:
        return ""
    head = (
        f"<tr><th>{_both('进程角色', 'role')}</th><th>{_both('CPU 秒', 'CPU s')}</th>"
        f"<th>{_both('每事件 CPU (µs)', 'CPU per event (µs)')}</th></tr>"
    )
    body = "".join(
        f"<tr><td>{html.escape(role)}</td><td>{cpu['cpu_s'][role]:,.1f}</td><td>{us:,.1f}</td></tr>"
        for role, us in sorted(per_event.items(), key=lambda item: -item[1])
    )
    total_us = cpu.get("total_us_per_event", 0.0)
    total = f"<tr><th>{_both('合计', 'total')}</th><td></td><td>{total_us:,.1f}</td></tr>"
    caption = _both("各进程 CPU（从加压开始到全部入库）", "CPU by process (load start to fully landed)")
    return f"<h2>{caption}</h2><table>{head}{body}{total}</table>"


def render_html(report: Mapping[str, Any]) -> str:
    """The whole page for a report dict made by :mod:`loadtests.runner`."""
    rows = []
    for key, zh, en in _LABELS:
        value = report.get(key, "")
        text = (
            f"{value:,.0f}"
            if isinstance(value, float)
            else f"{value:,}"
            if isinstance(value, int)
            else str(value)
        )
        rows.append(f"<tr><th>{_both(zh, en)}</th><td>{html.escape(text)}</td></tr>")
    timeline = report.get("timeline", {})
    charts = [
        svg_chart(
            "吞吐 / throughput",
            {
                "sent events/s": timeline.get("sent_events_per_s", []),
                "landed events/s": timeline.get("landed_events_per_s", []),
            },
            "events/s",
        ),
        svg_chart(
            "延迟 / latency",
            {
                "p50": timeline.get("latency_p50_ms", []),
                "p95": timeline.get("latency_p95_ms", []),
                "p99": timeline.get("latency_p99_ms", []),
            },
            "ms",
        ),
    ]
    run = html.escape(str(report.get("run", "")))
    toggle = "var h=document.documentElement;h.dataset.lang=h.dataset.lang==='en'?'zh':'en'"
    title = _both("classtrace 压测报告", "classtrace load-test report")
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>classtrace 压测报告 / load test {run}</title>
<style>
body{{font-family:"WenQuanYi Micro Hei","Microsoft YaHei",sans-serif;margin:2em;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}th,td{{border:1px solid #ccc;padding:4px 10px;text-align:left}}
html[data-lang=zh] [lang=en],html[data-lang=en] [lang=zh-CN]{{display:none}}
</style></head>
<body>
<button onclick="{toggle}">中文 / English</button>
<h1>{title} <small>{run}</small></h1>
<table>{"".join(rows)}</table>
{_cpu_table(report.get("cpu", {}))}
{"".join(f"<div>{c}</div>" for c in charts)}
<script>document.documentElement.dataset.lang="zh";</script>
</body></html>
"""
