"""Figures of the policy benchmark (``benchmarks/results/policy_regret.json``): measured ratio against the derived
bound as the stream grows, as a live plotly figure (:func:`fig_ratio_vs_bound`) and as a static PNG written with
numpy and zlib alone (:func:`write_bounds_png`; no plotting backend needed). Torch-free."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

COLORS = {"break-even": (31, 119, 180), "patient-2": (148, 103, 189), "ski-random": (44, 160, 44),
          "forecast-0.5": (255, 127, 14), "forecast-0.2": (214, 39, 40), "renewal": (127, 127, 127)}


def growth_series(res: dict[str, Any], scenario: str) -> dict[str, dict[str, list]]:
    """Per rule with a bound: stream lengths, worst measured excess ratio and total ratio over the streams, and
    the smallest derived bound over the streams, on one adversarial report scenario."""
    return {rid: g for rid, g in res["growth"][scenario].items() if res["rules"][rid]["plain_bound"] is not None}


def fig_ratio_vs_bound(res: dict[str, Any], scenario: str = "adversarial: queries stop"):
    """Plotly: worst measured ratio (solid: rent + updates, dotted: total cost) vs the derived bound (dashed) as the
    stream grows, per rule."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for rid, g in growth_series(res, scenario).items():
        color = "rgb({},{},{})".format(*COLORS.get(rid, (0, 0, 0)))
        label = res["rules"][rid]["label"]
        fig.add_trace(go.Scatter(x=g["steps"], y=g["worst_x_ratio"], name=f"{label}: worst excess ratio",
                                 line={"color": color}))
        fig.add_trace(go.Scatter(x=g["steps"], y=g["worst_ratio"], name=f"{label}: worst total-cost ratio",
                                 line={"color": color, "dash": "dot"}))
        fig.add_trace(go.Scatter(x=g["steps"], y=g["bound_min"], name=f"{label}: bound (smallest over streams)",
                                 line={"color": color, "dash": "dash"}))
    fig.update_layout(title=f"Measured ratio vs the derived bound as the stream grows ({scenario})",
                      xaxis={"title": "stream length (steps)"}, yaxis={"title": "cost / oracle's cost"}, height=460)
    return fig


# ---- a static PNG without a plotting backend ------------------------------------------------------------------------

_FONT = {  # 5x7 glyphs, one int per row (bit 4 = leftmost)
    "A": (14, 17, 17, 31, 17, 17, 17), "B": (30, 17, 17, 30, 17, 17, 30), "C": (14, 17, 16, 16, 16, 17, 14),
    "D": (30, 17, 17, 17, 17, 17, 30), "E": (31, 16, 16, 30, 16, 16, 31), "F": (31, 16, 16, 30, 16, 16, 16),
    "G": (14, 17, 16, 23, 17, 17, 15), "H": (17, 17, 17, 31, 17, 17, 17), "I": (14, 4, 4, 4, 4, 4, 14),
    "J": (7, 2, 2, 2, 2, 18, 12), "K": (17, 18, 20, 24, 20, 18, 17), "L": (16, 16, 16, 16, 16, 16, 31),
    "M": (17, 27, 21, 21, 17, 17, 17), "N": (17, 17, 25, 21, 19, 17, 17), "O": (14, 17, 17, 17, 17, 17, 14),
    "P": (30, 17, 17, 30, 16, 16, 16), "Q": (14, 17, 17, 17, 21, 18, 13), "R": (30, 17, 17, 30, 20, 18, 17),
    "S": (15, 16, 16, 14, 1, 1, 30), "T": (31, 4, 4, 4, 4, 4, 4), "U": (17, 17, 17, 17, 17, 17, 14),
    "V": (17, 17, 17, 17, 17, 10, 4), "W": (17, 17, 17, 21, 21, 21, 10), "X": (17, 17, 10, 4, 10, 17, 17),
    "Y": (17, 17, 10, 4, 4, 4, 4), "Z": (31, 1, 2, 4, 8, 16, 31), "0": (14, 17, 19, 21, 25, 17, 14),
    "1": (4, 12, 4, 4, 4, 4, 14), "2": (14, 17, 1, 2, 4, 8, 31), "3": (31, 2, 4, 2, 1, 17, 14),
    "4": (2, 6, 10, 18, 31, 2, 2), "5": (31, 16, 30, 1, 1, 17, 14), "6": (6, 8, 16, 30, 17, 17, 14),
    "7": (31, 1, 2, 4, 8, 8, 8), "8": (14, 17, 17, 14, 17, 17, 14), "9": (14, 17, 17, 15, 1, 2, 12),
    ".": (0, 0, 0, 0, 0, 12, 12), ",": (0, 0, 0, 0, 12, 4, 8), "-": (0, 0, 0, 31, 0, 0, 0),
    ":": (0, 12, 12, 0, 12, 12, 0), "(": (2, 4, 8, 8, 8, 4, 2), ")": (8, 4, 2, 2, 2, 4, 8),
    "=": (0, 0, 31, 0, 31, 0, 0), "/": (1, 1, 2, 4, 8, 16, 16), "+": (0, 4, 4, 31, 4, 4, 0), " ": (0,) * 7,
}


def _text(img: np.ndarray, x: int, y: int, s: str, color=(0, 0, 0), scale: int = 2) -> None:
    for ch in s.upper():
        rows = _FONT.get(ch, _FONT[" "])
        for r, bits in enumerate(rows):
            for c in range(5):
                if bits >> (4 - c) & 1:
                    img[y + r * scale:y + (r + 1) * scale, x + c * scale:x + (c + 1) * scale] = color
        x += 6 * scale


def _line(img: np.ndarray, p0: tuple[float, float], p1: tuple[float, float], color, width: int = 2,
          dash: int = 0) -> None:
    n = int(max(abs(p1[0] - p0[0]), abs(p1[1] - p0[1]))) + 1
    for i in range(n):
        if dash and (i // dash) % 2:
            continue
        x = int(round(p0[0] + (p1[0] - p0[0]) * i / max(n - 1, 1)))
        y = int(round(p0[1] + (p1[1] - p0[1]) * i / max(n - 1, 1)))
        img[max(0, y - width // 2):y + (width + 1) // 2, max(0, x - width // 2):x + (width + 1) // 2] = color


def _png(img: np.ndarray) -> bytes:
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[r].astype(np.uint8).tobytes() for r in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def write_bounds_png(res: dict[str, Any], path: str | Path, scenarios: tuple[str, ...] | None = None) -> Path:
    """The static twin of :func:`fig_ratio_vs_bound`: one panel per adversarial scenario, solid = worst measured
    excess ratio, dashed = smallest derived bound, per rule with a bound."""
    scenarios = scenarios or tuple(res["growth"])
    pw, ph, left, top, gap = 560, 360, 70, 70, 40
    W, H = left + len(scenarios) * (pw + gap), top + ph + 200
    img = np.full((H, W, 3), 255, np.uint8)
    _text(img, left, 16, "MEASURED WORST RATIO (SOLID) VS DERIVED BOUND (DASHED) AS THE STREAM GROWS", scale=2)
    series = {sc: growth_series(res, sc) for sc in scenarios}
    ymax = max(max(v for g in s.values() for v in g["worst_x_ratio"] + [b for b in g["bound_min"] if b is not None])
               for s in series.values())
    ymax = float(np.ceil(ymax))
    for i, sc in enumerate(scenarios):
        x0, y0 = left + i * (pw + gap), top
        steps = next(iter(series[sc].values()))["steps"]

        def sx(s: float, x0: int = x0, last: int = steps[-1]) -> float:
            return x0 + s / last * pw

        def sy(v: float, y0: int = y0) -> float:
            return y0 + ph - (v - 1.0) / (ymax - 1.0) * ph

        _line(img, (x0, y0), (x0, y0 + ph), (0, 0, 0), 1)
        _line(img, (x0, y0 + ph), (x0 + pw, y0 + ph), (0, 0, 0), 1)
        for v in np.arange(1.0, ymax + 1e-9, 1.0):
            _line(img, (x0 - 5, sy(v)), (x0 + pw, sy(v)), (220, 220, 220), 1)
            _text(img, x0 - 40, int(sy(v)) - 7, f"{v:.0f}", scale=2)
        for s in steps[1::2]:
            _text(img, int(sx(s)) - 18, y0 + ph + 8, str(s), scale=2)
        _text(img, x0, y0 - 24, sc.replace("adversarial: ", "adversarial "), scale=2)
        _text(img, x0 + pw // 2 - 90, y0 + ph + 32, "STREAM LENGTH (STEPS)", scale=2)
        for rid, g in series[sc].items():
            col = COLORS.get(rid, (0, 0, 0))
            pts = [(sx(s), sy(v)) for s, v in zip(g["steps"], g["worst_x_ratio"])]
            for a, b in zip(pts, pts[1:]):
                _line(img, a, b, col, 3)
            bpts = [(sx(s), sy(min(v, ymax))) for s, v in zip(g["steps"], g["bound_min"]) if v is not None]
            for a, b in zip(bpts, bpts[1:]):
                _line(img, a, b, col, 2, dash=8)
    ly = top + ph + 70
    for j, rid in enumerate(r for r in res["rules"] if res["rules"][r]["plain_bound"] is not None):
        x = left + (j % 3) * 400
        y = ly + (j // 3) * 30
        _line(img, (x, y + 7), (x + 40, y + 7), COLORS.get(rid, (0, 0, 0)), 3)
        _text(img, x + 50, y, rid, scale=2)
    _text(img, left, H - 30, "RATIO: RENT + UPDATES / ORACLE'S (FLOOR REMOVED); BOUND = FACTOR + ADDITIVE / X_OPT"
          .replace("'", "").replace("_", " "), scale=2)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_png(img))
    return path
