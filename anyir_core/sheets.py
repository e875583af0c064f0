"""Pictures for people: a contact sheet of degradations and before/after grids."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .degrade import TASKS, degrade


def _tile(img: np.ndarray, label: str, width: int) -> Image.Image:
    im = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
    im = im.resize((width, max(1, round(im.height * width / im.width))), Image.LANCZOS)
    canvas = Image.new("RGB", (im.width, im.height + 18), "white")
    canvas.paste(im, (0, 18))
    ImageDraw.Draw(canvas).text((4, 3), label, fill="black")
    return canvas


def grid(rows: list[list[tuple[str, np.ndarray]]], path: str | Path, width: int = 256) -> Path:
    """Rows of labelled images, each scaled to `width` px, written as one PNG (atomically)."""
    tiles = [[_tile(img, label, width) for label, img in row] for row in rows]
    cols = max(len(r) for r in tiles)
    row_h = [max(t.height for t in r) for r in tiles]
    sheet = Image.new("RGB", (cols * (width + 4) + 4, sum(row_h) + 4 * (len(tiles) + 1)), "white")
    y = 4
    for r, h in zip(tiles, row_h):
        for i, t in enumerate(r):
            sheet.paste(t, (4 + i * (width + 4), y))
        y += h + 4
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        sheet.save(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)  # a full disk: no half-written sheet
    return path


def contact_sheet(img: np.ndarray, path: str | Path, tasks: list[str] | None = None, seed: int = 0,
                  per_row: int = 4) -> Path:
    """The clean photo and each degradation of it, labelled, on one page."""
    items = [("clean", img)] + [(f"{t}: {TASKS[t].description}" if t in TASKS else t, degrade(img, t, seed=seed))
                                for t in (tasks or list(TASKS))]
    return grid([items[i:i + per_row] for i in range(0, len(items), per_row)], path)
