"""Loss curves from a run's stats.jsonl, drawn with OpenCV (the project has no plotting dependency).

Image convention: the returned figure is (H, W, 3) uint8 RGB.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from gannotate.io.images import write_image

__all__ = ["read_stats", "smooth", "draw_curves"]

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_RAW = (170, 190, 230)
_AVG = (20, 60, 160)
_INK = (40, 40, 40)
_GRID = (225, 225, 225)
_REF = (200, 60, 40)


def read_stats(path: str | Path) -> dict[str, np.ndarray]:
    """Columns of a stats.jsonl: ``{key: (N,) float64}``, NaN where a row lacks the key."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    keys = sorted({k for r in rows for k, v in r.items() if isinstance(v, (int, float))})
    return {k: np.asarray([float(r.get(k, np.nan)) for r in rows]) for k in keys}


def smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (the first values average what exists so far); NaNs are skipped."""
    v = np.nan_to_num(y, nan=0.0)
    m = (~np.isnan(y)).astype(np.float64)
    cv, cm = np.cumsum(v), np.cumsum(m)
    lag_v = np.concatenate([np.zeros(window), cv[:-window]]) if len(y) > window else np.zeros_like(cv)
    lag_m = np.concatenate([np.zeros(window), cm[:-window]]) if len(y) > window else np.zeros_like(cm)
    return (cv - lag_v) / np.maximum(cm - lag_m, 1)


def _panel(
    x: np.ndarray,
    y: np.ndarray,
    title: str,
    size: tuple[int, int],
    window: int,
    ref: float | None = None,
    ref_series: tuple[str, np.ndarray] | None = None,
) -> np.ndarray:
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    left, right, top, bottom = 70, 15, 28, 32
    ok = ~np.isnan(y)
    x, y = x[ok], y[ok]
    cv2.putText(img, title, (left, 18), _FONT, 0.5, _INK, 1, cv2.LINE_AA)
    if len(x) < 2:
        return img
    ys = smooth(y, window)
    lo, hi = float(np.percentile(y, 1)), float(np.percentile(y, 99))
    lo, hi = min(lo, ys.min()), max(hi, ys.max())
    if ref is not None:
        lo, hi = min(lo, ref), max(hi, ref)
    rs = None
    if ref_series is not None:  # smoothed like the curve, over the same rows
        rs = smooth(ref_series[1], window)[ok]
        lo, hi = min(lo, float(np.nanmin(rs))), max(hi, float(np.nanmax(rs)))
    hi = hi if hi > lo else lo + 1.0
    x0, x1 = float(x.min()), float(x.max())

    def to_px(xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
        px = left + (xx - x0) / max(x1 - x0, 1e-9) * (w - left - right)
        py = top + (hi - np.clip(yy, lo, hi)) / (hi - lo) * (h - top - bottom)
        return np.stack([px, py], axis=1).round().astype(np.int32)

    for i in range(5):  # horizontal grid + value labels
        v = lo + (hi - lo) * i / 4
        yy = int(to_px(np.array([x0]), np.array([v]))[0, 1])
        cv2.line(img, (left, yy), (w - right, yy), _GRID, 1)
        cv2.putText(img, f"{v:.3g}", (4, yy + 4), _FONT, 0.38, _INK, 1, cv2.LINE_AA)
    for i in range(5):  # step labels
        s = x0 + (x1 - x0) * i / 4
        xx = int(to_px(np.array([s]), np.array([lo]))[0, 0])
        cv2.putText(img, f"{int(s)}", (max(xx - 12, 0), h - 12), _FONT, 0.38, _INK, 1, cv2.LINE_AA)
    cv2.rectangle(img, (left, top), (w - right, h - bottom), _INK, 1)
    if ref is not None:
        ry = int(to_px(np.array([x0]), np.array([ref]))[0, 1])
        cv2.line(img, (left, ry), (w - right, ry), _REF, 1, cv2.LINE_AA)
        cv2.putText(img, f"reference {ref:.3g}", (w - right - 130, ry - 4), _FONT, 0.38, _REF, 1, cv2.LINE_AA)
    if rs is not None:
        cv2.polylines(img, [to_px(x, rs)], False, _REF, 1, cv2.LINE_AA)
        cv2.putText(img, ref_series[0], (w - right - 130, top + 14), _FONT, 0.38, _REF, 1, cv2.LINE_AA)
    cv2.polylines(img, [to_px(x, y)], False, _RAW, 1, cv2.LINE_AA)
    cv2.polylines(img, [to_px(x, ys)], False, _AVG, 2, cv2.LINE_AA)
    return img


def draw_curves(
    stats: dict[str, np.ndarray],
    keys: Sequence[str],
    out_png: str | Path | None = None,
    title: str = "",
    window: int = 10,
    panel_size: tuple[int, int] = (760, 200),
    references: dict[str, float | str] | None = None,
) -> np.ndarray:
    """One panel per key (raw values light, trailing mean of ``window`` rows dark) against ``step``.

    ``references`` adds a reference to a key's panel: a number draws a horizontal line, the name of
    another column draws that column, smoothed alike (e.g. ``{"Loss/G/pix": "Ref/pix_copy"}``: the
    pixel loss a copy of the input would have had on the same batches).
    Returns the figure (H, W, 3) uint8 RGB; writes it to ``out_png`` when given.
    """
    x = stats["step"]
    refs = references or {}

    def panel(k: str) -> np.ndarray:
        r = refs.get(k)
        if isinstance(r, str):
            return _panel(x, stats[k], k, panel_size, window, ref_series=(r, stats[r]) if r in stats else None)
        return _panel(x, stats[k], k, panel_size, window, r)

    panels = [panel(k) for k in keys if k in stats]
    head = np.full((30, panel_size[0], 3), 255, np.uint8)
    cv2.putText(head, title, (10, 21), _FONT, 0.55, _INK, 1, cv2.LINE_AA)
    fig = np.concatenate([head, *panels], axis=0)
    if out_png is not None:
        write_image(out_png, fig)  # RGB, atomic; creates the folder
    return fig
