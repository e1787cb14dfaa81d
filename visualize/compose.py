"""Panel labels and the legend drawn around a rendered frame (PIL): Open3D's legacy window
cannot draw text, so screenshots get a header (title, one label above each panel) and a legend
band below the unchanged 3-D frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

HEADER = 64  # px above the frame: title line + panel-label line
SWATCH = 14


@lru_cache(maxsize=8)
def _font(size: int):
    from PIL import ImageFont

    try:
        from matplotlib import font_manager

        return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)
    except Exception:  # no matplotlib font: Pillow's built-in one
        return ImageFont.load_default()


def _text_width(draw, text: str, font) -> float:
    return draw.textlength(text, font=font)


def compose(
    frame: np.ndarray,
    *,
    title: str,
    labels: Sequence[tuple[float, str]],
    legend: Sequence[tuple[np.ndarray, str]],
    notes: Sequence[tuple[float, float, str, tuple[int, int, int]]] = (),
    background: tuple[int, int, int] = (255, 255, 255),
):
    """Return a PIL image: header (title, labels centred at their x pixel), frame, legend rows.

    Args:
        frame: (H, W, 3) uint8 rendered image.
        labels: (x pixel in the frame, text) per panel.
        legend: (rgb uint8, text) entries, wrapped into rows as wide as the frame.
        notes: (x, y pixel in the frame, text, rgb) centred on the frame (e.g. per-shape labels).
    """
    from PIL import Image, ImageDraw

    h, w = frame.shape[:2]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    small = _font(14)
    rows: list[list[tuple[np.ndarray, str, float]]] = [[]]
    x = 12.0
    for rgb, text in legend:
        item = SWATCH + 6 + _text_width(probe, text, small) + 18
        if rows[-1] and x + item > w - 12:
            rows.append([])
            x = 12.0
        rows[-1].append((rgb, text, x))
        x += item
    footer = (len(rows) * 22 + 12) if legend else 0
    img = Image.new("RGB", (w, HEADER + h + footer), background)
    img.paste(Image.fromarray(np.ascontiguousarray(frame[..., :3])), (0, HEADER))
    draw = ImageDraw.Draw(img)
    draw.text((12, 8), title, fill=(0, 0, 0), font=_font(16))
    big = _font(17)
    for cx, text in labels:
        tw = _text_width(draw, text, big)
        left = float(np.clip(cx - tw / 2, 4, w - tw - 4))
        draw.text((left, 36), text, fill=(0, 0, 0), font=big)
    for nx, ny, text, col in notes:
        tw = _text_width(draw, text, small)
        draw.text((nx - tw / 2, HEADER + ny), text, fill=tuple(col), font=small)
    for r, row in enumerate(rows):
        y = HEADER + h + 8 + r * 22
        for rgb, text, x0 in row:
            col = tuple(int(v) for v in rgb)
            draw.rectangle([x0, y + 2, x0 + SWATCH, y + 2 + SWATCH], fill=col, outline=(60, 60, 60))
            draw.text((x0 + SWATCH + 6, y), text, fill=(0, 0, 0), font=small)
    return img
