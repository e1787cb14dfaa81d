"""The browser viewer's page: one self-contained HTML file (inline CSS, JS and data).

`pointseg view --export-html FILE` writes it with the data embedded as base64; `pointseg view
--web` serves the very same page with the data fetched from the server (`data.bin`), so there is
one viewer, tested once. The page (visualize/web/page.html, viewer.css, viewer.js) uses no
library and no network: a small WebGL 2 program draws the points and colours them from their
labels on the GPU (why not three.js: docs/viewer.md).
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
from importlib import resources
from pathlib import Path

from pointseg.errors import ConfigError
from visualize.scene import Scene
from visualize.web_data import Payload, build_payload


def _asset(name: str) -> str:
    return resources.files("visualize").joinpath("web", name).read_text(encoding="utf-8")


def _json_script(obj) -> str:
    """JSON safe inside <script>: no `</`, no `<!--`, no U+2028/2029 surprises."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def render_page(payload: Payload, *, data_url: str | None = None) -> str:
    """The page's HTML. `data_url` None: the data is embedded (base64); else fetched from it."""
    meta = dict(payload.meta)
    if data_url is not None:
        meta["data_url"] = data_url
        data = ""
    else:
        data = base64.b64encode(payload.blob).decode("ascii")
        # 76-char lines would grow the file by 1/76: one line is fine for every browser
    title = f"pointseg view: {meta['title']} — " + " | ".join(p["name"] for p in meta["panels"])
    parts = {
        "{{TITLE}}": html.escape(title),
        "{{CSS}}": _asset("viewer.css"),
        "{{JS}}": _asset("viewer.js").replace("</script", "<\\/script"),
        "{{META}}": _json_script(meta),
        "{{DATA}}": data,
    }
    page = _asset("page.html")
    out = []
    # one pass, so a placeholder-like text inside the data or the scripts is never replaced
    pattern = re.compile("|".join(re.escape(k) for k in parts))
    pos = 0
    for m in pattern.finditer(page):
        out.append(page[pos : m.start()])
        out.append(parts[m.group(0)])
        pos = m.end()
    out.append(page[pos:])
    return "".join(out)


def write_html(path: str | os.PathLike, text: str) -> int:
    """Write `text` to `path` atomically; returns its size in bytes. Clear error if it cannot."""
    from pointseg.io import atomic_write

    path = Path(path)
    data = text.encode("utf-8")
    if path.is_dir():
        raise ConfigError(
            f"--export-html {path}: is a folder; give a file name, e.g. {path / 'comparison.html'}"
        )
    try:
        with atomic_write(path, suffix=".html") as tmp:
            tmp.write_bytes(data)
    except (FileExistsError, NotADirectoryError) as exc:
        raise ConfigError(
            f"--export-html {path}: cannot write the file: a part of its folder path is a file, "
            "not a folder"
        ) from exc
    except OSError as exc:
        raise ConfigError(
            f"--export-html {path}: cannot write the file ({exc.strerror or exc}); "
            "choose a writable folder"
        ) from exc
    return len(data)


def export_html(scene: Scene, path: str | os.PathLike, **kw) -> tuple[Path, int, Payload]:
    """Write the self-contained comparison page of `scene`; returns (path, bytes, payload).

    Keyword arguments are those of `visualize.web_data.build_payload` (colouring, view, budget…)."""
    payload = build_payload(scene, **kw)
    size = write_html(path, render_page(payload))
    return Path(path), size, payload


def describe(payload: Payload) -> str:
    """One line on what the page shows: points, display downsample, file size is added by callers."""
    m = payload.meta
    panels = len(m["panels"])
    if m["shown"] < m["num_points"]:
        how = f", one per {100 * m['voxel']:.1f} cm voxel" if m["voxel"] > 0 else ""
        return (
            f"{m['shown']:,} of {m['num_points']:,} points per panel shown ({m['shown'] * panels:,} "
            f"in all, budget {m['budget']:,}{how}; metrics use every point)"
        )
    return f"all {m['num_points']:,} points in each of {panels} panels"


def human_size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)
