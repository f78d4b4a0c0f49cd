"""Inline SVG charts, drawn in Python: a report must open offline, so no chart library or CDN.

Each function returns one ``<svg>`` string sized by its viewBox (it scales with the page). Text
is escaped; colours come from one small palette so the charts of a report match.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

__all__ = ["PALETTE", "bar_stack", "line_chart", "st_curve"]

PALETTE = ("#2563eb", "#16a34a", "#f59e0b", "#db2777", "#7c3aed", "#0891b2")
_W, _H, _PAD = 640, 260, 40


def _frame(body: list[str], width: int = _W, height: int = _H, label: str = "") -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}" class="chart">' + "".join(body) + "</svg>"
    )


def _axes(x0: int, y0: int, x1: int, y1: int) -> list[str]:
    return [
        f'<line x1="{x0}" y1="{y1}" x2="{x1}" y2="{y1}" stroke="#999"/>',
        f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#999"/>',
    ]


def _legend(names: Sequence[str], x: int, y: int) -> list[str]:
    out = []
    for i, name in enumerate(names):
        colour = PALETTE[i % len(PALETTE)]
        out.append(f'<rect x="{x + i * 120}" y="{y - 9}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{x + i * 120 + 14}" y="{y}" font-size="11">{escape(name)}</text>')
    return out


def line_chart(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    label: str = "",
    y_max: float | None = None,
) -> str:
    """Lines over categorical x ``labels``; ``None`` values leave a gap. y from 0 to ``y_max``."""
    values = [v for vs in series.values() for v in vs if v is not None]
    top = y_max if y_max is not None else (max(values) if values else 1.0) or 1.0
    x0, y0, x1, y1 = _PAD, 20, _W - 10, _H - _PAD
    n = max(len(labels), 1)
    step = (x1 - x0) / max(n - 1, 1)
    body = _axes(x0, y0, x1, y1)
    body.append(f'<text x="4" y="{y0 + 4}" font-size="10">{top:.2g}</text>')
    body.append(f'<text x="4" y="{y1}" font-size="10">0</text>')
    every = max(1, n // 8)
    for i, name in enumerate(labels):
        if i % every == 0:
            body.append(f'<text x="{x0 + i * step:.1f}" y="{y1 + 14}" font-size="10">{escape(name)}</text>')
    for k, (_name, vs) in enumerate(series.items()):
        colour = PALETTE[k % len(PALETTE)]
        segment: list[str] = []
        for i, v in enumerate(vs):
            if v is None:
                if len(segment) > 1:
                    body.append(_polyline(segment, colour))
                segment = []
                continue
            y = y1 - (y1 - y0) * min(v, top) / top
            segment.append(f"{x0 + i * step:.1f},{y:.1f}")
            body.append(f'<circle cx="{x0 + i * step:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>')
        if len(segment) > 1:
            body.append(_polyline(segment, colour))
    body += _legend(list(series), x0, 12)
    return _frame(body, label=label)


def _polyline(points: list[str], colour: str) -> str:
    return f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(points)}"/>'


def bar_stack(labels: Sequence[str], series: Mapping[str, Sequence[float]], label: str = "") -> str:
    """Stacked bars, one per x label (e.g. teaching-mode mix per week)."""
    totals = [sum(vs[i] for vs in series.values()) for i in range(len(labels))]
    top = max(totals, default=1) or 1
    x0, y0, x1, y1 = _PAD, 20, _W - 10, _H - _PAD
    n = max(len(labels), 1)
    width = (x1 - x0) / n
    body = _axes(x0, y0, x1, y1)
    body.append(f'<text x="4" y="{y0 + 4}" font-size="10">{top:g}</text>')
    for i, name in enumerate(labels):
        base = float(y1)
        for k, vs in enumerate(series.values()):
            h = (y1 - y0) * vs[i] / top
            if h > 0:
                body.append(
                    f'<rect x="{x0 + i * width + 2:.1f}" y="{base - h:.1f}" width="{max(width - 4, 1):.1f}" '
                    f'height="{h:.1f}" fill="{PALETTE[k % len(PALETTE)]}"/>'
                )
            base -= h
        if i % max(1, n // 8) == 0:
            body.append(
                f'<text x="{x0 + i * width + 2:.1f}" y="{y1 + 14}" font-size="10">{escape(name)}</text>'
            )
    body += _legend(list(series), x0, 12)
    return _frame(body, label=label)


def st_curve(codes: str, label: str = "", s_axis: str = "S", t_axis: str = "T") -> str:
    """The S-T diagram: from the origin, each S sample steps right, each T sample steps up.

    A lecture hugs the T axis, practice the S axis, dialogue zig-zags along the diagonal.
    """
    n = max(len(codes), 1)
    size = 260
    x0, y1 = 36, size - 30
    scale = (size - 50) / n
    body = _axes(x0, 10, x0 + int(n * scale) + 5, y1)
    body.append(
        f'<line x1="{x0}" y1="{y1}" x2="{x0 + n * scale:.1f}" y2="{y1 - n * scale:.1f}" stroke="#ddd"/>'
    )
    x = y = 0
    points = [f"{x0},{y1}"]
    for code in codes:
        if code == "T":
            y += 1
        else:
            x += 1
        points.append(f"{x0 + x * scale:.1f},{y1 - y * scale:.1f}")
    body.append(_polyline(points, PALETTE[0]))
    body.append(f'<text x="{x0 + n * scale / 2:.0f}" y="{y1 + 20}" font-size="11">{escape(s_axis)}</text>')
    body.append(f'<text x="4" y="{y1 - n * scale / 2:.0f}" font-size="11">{escape(t_axis)}</text>')
    return _frame(body, width=size + 20, height=size, label=label)
