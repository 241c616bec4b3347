"""The picture of one scenario: a flow (Sankey) diagram, origin cluster → model asked for → outcome.

Every request class weighs the same; a band's width is its share of all requests. Outcomes served
by the model the client asked for are green, answers from another model (a fallback, or vLLM
accepting an alias) amber, errors red. Written as SVG (no dependencies), as PNG when ``cairosvg``
and the cairo library are installed (``pip install 'fleetkit[diagram]'``), and as a Mermaid
``flowchart`` for markdown (GitHub renders it; link widths follow the shares).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

from fleetkit.simulate.core import INGRESS_DOWN, Outcome
from fleetkit.simulate.report import SimulationReport

GREEN, AMBER, RED, GREY = "#2e7d32", "#ef8f00", "#c62828", "#78909c"
TOP, BOTTOM, NODE_W, GAP = 96, 64, 14, 12
COLUMNS = (190, 520, 800)  # x of the three node columns
LABEL_H = 18.0  # vertical room a node label needs
CHAR_W = 8.6  # average advance of a 15 px sans-serif character, for sizing the canvas and label backgrounds


@dataclass
class _Node:
    key: str
    label: str
    column: int
    color: str
    value: float = 0.0
    y: float = 0.0
    h: float = 0.0
    out_used: float = 0.0
    in_used: float = 0.0


def _outcome_key(o: Outcome, intended: str) -> tuple[int, str, str, str]:
    if not o.ok:
        return (2, f"{o.status}", o.reason, "")
    wrong = o.substitute or o.model != intended
    return (1 if wrong else 0, o.model, o.cluster, f"{o.version} {o.gpu}")


def flows(report: SimulationReport, scenario: str) -> tuple[list[_Node], list[tuple[str, str, float, str]]]:
    """Nodes and links (source, target, value, colour) of one scenario; values sum to 1 per column."""
    n = len(report.classes) or 1
    nodes: dict[str, _Node] = {}
    links: dict[tuple[str, str], list[float | str]] = {}

    def node(key: str, label: str, column: int, color: str) -> _Node:
        return nodes.setdefault(key, _Node(key, label, column, color))

    def link(a: str, b: str, v: float, color: str) -> None:
        cur = links.setdefault((a, b), [0.0, color])
        cur[0] = float(cur[0]) + v

    down = {
        c.request.origin
        for i, c in enumerate(report.classes)
        if all(o.reason == INGRESS_DOWN for o in report.dist(i, scenario))
    }
    for i, c in enumerate(report.classes):
        origin = c.request.origin
        src = node(
            f"o:{origin}", origin + (" (down)" if origin in down else ""), 0, RED if origin in down else GREY
        )
        mid = node(f"m:{c.intended}", c.intended, 1, GREY)
        link(src.key, mid.key, 1 / n, GREY)
        for o, p in report.dist(i, scenario).items():
            rank, a, b, d = _outcome_key(o, c.intended)
            color = (GREEN, AMBER, RED)[rank]
            if o.ok:
                label = f"{o.model}{'@' + o.version if o.version else ''} {o.gpu} · {o.cluster}"
                label += " (as another model)" if o.substitute else ""
            else:
                label = f"{o.status} {o.reason}"
            tgt = node(f"r:{rank}:{a}:{b}:{d}:{o.substitute}", label, 2, color)
            link(mid.key, tgt.key, p / n, color)
    for (a, b), (v, _) in links.items():
        nodes[a].value += float(v) if nodes[a].column == 0 else 0.0
        nodes[b].value += float(v)
    for nd in nodes.values():
        if nd.column == 1:
            nd.value = sum(float(v) for (a, b), (v, _) in links.items() if b == nd.key)
    ordered = sorted(nodes.values(), key=lambda nd: (nd.column, nd.key))
    return ordered, [(a, b, float(v), str(col)) for (a, b), (v, col) in sorted(links.items())]


def _layout(nodes: list[_Node]) -> float:
    counts = [sum(1 for nd in nodes if nd.column == c) for c in range(3)]
    inner = max(360.0, 26.0 * max(counts))
    scale = inner
    bottom = 0.0
    for c in range(3):
        y = float(TOP)
        for nd in (nd for nd in nodes if nd.column == c):
            nd.y, nd.h = y, max(2.0, nd.value * scale)
            y += max(nd.h, LABEL_H) + GAP  # small nodes keep room for their label
        bottom = max(bottom, y)
    return max(TOP + inner + GAP * max(counts), bottom) + BOTTOM


def to_svg(report: SimulationReport, scenario: str, title: str | None = None) -> str:
    nodes, links = flows(report, scenario)
    height = _layout(nodes)
    longest = max((len(nd.label) + 5 for nd in nodes if nd.column == 2), default=20)
    width = int(max(1000, COLUMNS[2] + NODE_W + 12 + longest * CHAR_W + 24))
    by_key = {nd.key: nd for nd in nodes}
    scale = max(360.0, 26.0 * max(sum(1 for nd in nodes if nd.column == c) for c in range(3)))
    out = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height:.0f}" '
            f'viewBox="0 0 {width} {height:.0f}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">'
        ),
        f'<rect width="{width}" height="{height:.0f}" fill="#ffffff"/>',
        f'<text x="20" y="30" font-size="19" font-weight="bold">{escape(title or "fleetkit simulate")}</text>',
        (
            f'<text x="20" y="54" font-size="14" fill="#455a64">scenario: {escape(scenario)} · '
            f"{len(report.classes)} request class{'es' if len(report.classes) != 1 else ''}, each the same weight</text>"
        ),
    ]
    for a, b, v, color in links:
        s, t = by_key[a], by_key[b]
        h = max(1.0, v * scale)
        y0, y1 = s.y + s.out_used, t.y + t.in_used
        s.out_used += h
        t.in_used += h
        x0, x1 = COLUMNS[s.column] + NODE_W, COLUMNS[t.column]
        xm = (x0 + x1) / 2
        out.append(
            f'<path d="M{x0},{y0:.1f} C{xm},{y0:.1f} {xm},{y1:.1f} {x1},{y1:.1f} L{x1},{y1 + h:.1f} '
            f'C{xm},{y1 + h:.1f} {xm},{y0 + h:.1f} {x0},{y0 + h:.1f} Z" fill="{color}" fill-opacity="0.35"/>'
        )
    for nd in nodes:
        x = COLUMNS[nd.column]
        out.append(f'<rect x="{x}" y="{nd.y:.1f}" width="{NODE_W}" height="{nd.h:.1f}" fill="{nd.color}"/>')
        pct = f"{nd.value * 100:.0f}%" if nd.value >= 0.005 else f"{nd.value * 100:.1g}%"
        ty = nd.y + nd.h / 2 + 5
        if nd.column == 0:
            out.append(
                f'<text x="{x - 8}" y="{ty:.1f}" font-size="15" text-anchor="end">{escape(nd.label)}</text>'
            )
        else:
            text = f"{pct} {nd.label}"
            if nd.column == 1:  # a white backing keeps the label readable over the bands
                out.append(
                    f'<rect x="{x + NODE_W + 4}" y="{ty - 15:.1f}" width="{len(text) * CHAR_W + 8:.0f}" '
                    f'height="20" rx="3" fill="#ffffff" fill-opacity="0.85"/>'
                )
            weight = ' font-weight="bold"' if nd.column == 2 else ""
            out.append(
                f'<text x="{x + NODE_W + 8}" y="{ty:.1f}" font-size="15"{weight} fill="#212121">'
                f"{escape(text)}</text>"
            )
    ly = height - 26
    for i, (color, text) in enumerate(
        ((GREEN, "served by the model asked for"), (AMBER, "answered by another model"), (RED, "error"))
    ):
        lx = 20 + i * 300
        out.append(f'<rect x="{lx}" y="{ly - 12}" width="14" height="14" fill="{color}"/>')
        out.append(f'<text x="{lx + 22}" y="{ly}" font-size="14">{text}</text>')
    for x, anchor, text in (
        (COLUMNS[0] + NODE_W, "end", "ingress cluster"),
        (COLUMNS[1], "start", "model asked for"),
        (COLUMNS[2], "start", "outcome (share of all requests)"),
    ):
        out.append(
            f'<text x="{x}" y="{TOP - 12}" font-size="13" font-weight="bold" fill="#455a64" '
            f'text-anchor="{anchor}">{text}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def to_mermaid(report: SimulationReport, scenario: str) -> str:
    nodes, links = flows(report, scenario)
    ids = {nd.key: f"n{i}" for i, nd in enumerate(nodes)}
    lines = ["flowchart LR"]
    for nd in nodes:
        pct = f" · {nd.value * 100:.0f}%" if nd.column == 2 else ""
        text = (nd.label + pct).replace('"', "'")
        lines.append(f'  {ids[nd.key]}["{text}"]')
    styles = []
    for i, (a, b, v, color) in enumerate(links):
        lines.append(f"  {ids[a]} -->|{v * 100:.0f}%| {ids[b]}")
        styles.append(f"  linkStyle {i} stroke:{color},stroke-width:{max(1.0, v * 24):.1f}px")
    for nd in nodes:
        if nd.column == 2:
            lines.append(f"  style {ids[nd.key]} fill:{nd.color},color:#ffffff")
    return "\n".join(lines + styles) + "\n"


def png_available() -> str | None:
    """None when PNG output works, else why not."""
    try:
        import cairosvg  # noqa: F401  (optional: the diagram extra)
    except (ImportError, OSError) as err:
        return f"PNG needs cairosvg and the cairo library ({err.__class__.__name__}: {err})"
    return None


def write_png(svg: str, path: Path) -> None:
    import cairosvg  # optional dependency, checked by png_available()

    cairosvg.svg2png(bytestring=svg.encode("utf-8"), write_to=str(path))


def scenario_for_picture(report: SimulationReport, wanted: Sequence[str] | None = None) -> str:
    """The scenario to draw: the one asked for, else the first."""
    names = [s.name for s in report.scenarios]
    for w in wanted or []:
        if w in names:
            return w
    return names[0]
