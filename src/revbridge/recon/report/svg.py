"""Two small inline SVG charts for the HTML report: the variance trend and the case aging.

Written by hand rather than through a plotting library: the report must open offline, with no
script, and these are a line chart and a bar chart. Every label is escaped (``markupsafe``).
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from revbridge.recon.report.model import TrendPoint

_W, _H, _PAD = 640, 220, 40


def _frame(title: str, body: str) -> Markup:
    # Every interpolated text is escaped above; the rest is our own markup.
    return Markup(  # noqa: S704
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" width="{_W}" '
        f'height="{_H}" role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - 10}" y2="{_H - _PAD}" stroke="#888"/>'
        f'<line x1="{_PAD}" y1="10" x2="{_PAD}" y2="{_H - _PAD}" stroke="#888"/>{body}</svg>'
    )


def trend_chart(points: Sequence[TrendPoint]) -> Markup:
    """Variances (cases and within tolerance) and open cases per run, oldest run first."""
    title = "Variance trend over recent runs"
    if not points:
        return _frame(title, f'<text x="{_PAD + 10}" y="{_H // 2}">no runs yet</text>')
    series = (
        ("variances", "#c0392b", [p.variance_count for p in points]),
        ("within tolerance", "#2980b9", [p.within_tolerance_count for p in points]),
        ("open cases", "#8e44ad", [p.open_cases for p in points]),
    )
    top = max(1, *(v for _, _, values in series for v in values))
    step = (_W - _PAD - 20) / max(1, len(points) - 1)

    def xy(i: int, v: int) -> tuple[float, float]:
        return _PAD + i * step, (_H - _PAD) - v * (_H - _PAD - 20) / top

    parts = [f'<text x="4" y="18" font-size="11">{top}</text>']
    for n, (name, colour, values) in enumerate(series):
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(i, v) for i, v in enumerate(values)))
        parts.append(
            f'<polyline class="series" data-series="{escape(name)}" fill="none" '
            f'stroke="{colour}" stroke-width="2" points="{coords}"/>'
        )
        for i, v in enumerate(values):
            x, y = xy(i, v)
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}">'
                f"<title>run {points[i].run_id} ({escape(points[i].period_start.isoformat())}): "
                f"{v} {escape(name)}</title></circle>"
            )
        parts.append(
            f'<text x="{_PAD + 10 + n * 150}" y="{_H - 8}" font-size="11" fill="{colour}">'
            f"{escape(name)}</text>"
        )
    return _frame(title, "".join(parts))


def aging_chart(aging: Sequence[tuple[str, int]]) -> Markup:
    """Open cases per aging bucket (days open), as bars."""
    title = "Open cases by age (days)"
    top = max([1, *(n for _, n in aging)])
    width = (_W - _PAD - 20) / max(1, len(aging))
    parts = [f'<text x="4" y="18" font-size="11">{top}</text>']
    for i, (label, n) in enumerate(aging):
        height = n * (_H - _PAD - 20) / top
        x = _PAD + 10 + i * width
        parts.append(
            f'<rect class="bar" data-bucket="{escape(label)}" x="{x:.1f}" '
            f'y="{_H - _PAD - height:.1f}" width="{width - 20:.1f}" height="{height:.1f}" '
            f'fill="#e67e22"><title>{escape(label)} days: {n}</title></rect>'
            f'<text x="{x + (width - 20) / 2:.1f}" y="{_H - _PAD + 16}" font-size="11" '
            f'text-anchor="middle">{escape(label)} ({n})</text>'
        )
    return _frame(title, "".join(parts))
