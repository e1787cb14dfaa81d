"""The browser viewer on large rooms: preparation time, file size, load time and redraw time.

    python benchmarks/web_view.py                          # 1 M and 10 M points, default budget
    python benchmarks/web_view.py --points 2000000 --budgets 250000 1000000 3000000

For each generated room (floor, ceiling, walls, furniture boxes; ground truth and two models'
predictions with 10 % / 25 % of the labels changed) and each display budget it measures:

- `build_payload` (display voxel downsample + metrics on every point) and the page's size;
- in headless Chromium (system `chromium` + `chromedriver`, software WebGL: SwiftShader — a
  slow, CPU-only renderer, so the times are an upper bound of what a laptop's GPU does): the
  time from navigation to the first drawn frame, the mean time of 10 full redraws of all
  panels (`window.pointseg.timeFrames`, which waits for the frame with `readPixels`), and of 10
  redraws while the camera moves (the page's level of detail: a random prefix of the points sized
  to a 40 ms frame, the full frame once the mouse rests).

The baseline in the same run is the budget of 250 k points: ratios against it show how the
page scales with the points it draws. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pointseg.data.s3dis import CLASSES  # noqa: E402
from visualize.scene import Scene  # noqa: E402
from visualize.web_data import build_payload  # noqa: E402
from visualize.web_page import human_size, render_page, write_html  # noqa: E402


def make_room(n: int, seed: int = 0) -> Scene:
    """n points on the surfaces of a 12 x 8 x 3 m room with 40 boxes of furniture."""
    rng = np.random.default_rng(seed)
    C = {c: i for i, c in enumerate(CLASSES)}
    parts = []
    area = {"floor": 96, "ceiling": 96, "wall": 120, "box": 40 * 3.0}
    total = sum(area.values())
    k = {key: int(n * a / total) for key, a in area.items()}
    k["box"] = n - k["floor"] - k["ceiling"] - k["wall"]
    u = rng.random((k["floor"], 2)) * (12, 8)
    parts.append((np.c_[u, np.zeros(len(u))], np.full(len(u), C["floor"])))
    u = rng.random((k["ceiling"], 2)) * (12, 8)
    parts.append((np.c_[u, np.full(len(u), 3.0)], np.full(len(u), C["ceiling"])))
    t = rng.random(k["wall"]) * 40
    z = rng.random(k["wall"]) * 3
    x = np.where(t < 12, t, np.where(t < 20, 12, np.where(t < 32, 32 - t, 0)))
    y = np.where(t < 12, 0, np.where(t < 20, t - 12, np.where(t < 32, 8, 40 - t)))
    parts.append((np.c_[x, y, z], np.full(len(t), C["wall"])))
    furniture = [C[c] for c in ("table", "chair", "sofa", "bookcase", "board", "clutter")]
    box = rng.integers(0, 40, k["box"])
    centres = np.c_[rng.random((40, 2)) * (10, 6) + 1, rng.random(40) * 0.8 + 0.3]
    cls = rng.choice(furniture, 40)
    parts.append((centres[box] + (rng.random((k["box"], 3)) - 0.5) * (1.0, 1.0, 0.6), cls[box]))
    xyz = np.concatenate([p for p, _ in parts]).astype(np.float32)
    label = np.concatenate([c for _, c in parts]).astype(np.uint8)
    rgb = rng.integers(0, 255, (len(xyz), 3), dtype=np.uint8)

    def noisy(p: float) -> np.ndarray:
        out = label.copy()
        flip = rng.random(len(out)) < p
        out[flip] = rng.integers(0, 13, int(flip.sum()))
        return out

    return Scene(xyz, rgb, label, {"ResGCN": noisy(0.1), "PlainGCN": noisy(0.25)}, title="bench")


def browser_times(path: Path) -> tuple[float, float, float]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from viewer.browser import Browser, find_browser

    exe, driver, why = find_browser()
    if why:
        raise SystemExit(why)
    b = Browser(exe, driver)
    try:
        t0 = time.perf_counter()
        b.load(path.as_uri(), timeout=600)
        load = time.perf_counter() - t0
        b.js("window.pointseg.timeFrames(1)")  # warm-up
        frame = float(b.js("return window.pointseg.timeFrames(10)"))
        moving = float(b.js("return window.pointseg.timeFrames(10, true)"))
        return load, frame / 1000.0, moving / 1000.0
    finally:
        b.quit()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--points", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--budgets", type=int, nargs="+", default=[250_000, 1_000_000])
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.points:
            scene = make_room(n)
            for budget in args.budgets:
                t0 = time.perf_counter()
                payload = build_payload(scene, budget=budget)
                prep = time.perf_counter() - t0
                path = Path(tmp) / f"v_{n}_{budget}.html"
                size = write_html(path, render_page(payload))
                load, frame, moving = browser_times(path)
                m = payload.meta
                row = {
                    "points": n,
                    "budget": budget,
                    "drawn": m["shown"] * len(m["panels"]),
                    "voxel_cm": round(100 * m["voxel"], 2),
                    "prepare_s": round(prep, 2),
                    "file_bytes": size,
                    "load_s": round(load, 2),
                    "redraw_ms": round(1000 * frame, 1),
                    "moving_ms": round(1000 * moving, 1),
                }
                rows.append(row)
                print(
                    f"{n:>11,} pts  budget {budget:>9,}  drawn {row['drawn']:>9,}  voxel "
                    f"{row['voxel_cm']:>5} cm  prepare {prep:6.2f} s  file {human_size(size):>9}  "
                    f"load {load:6.2f} s  redraw {1000 * frame:7.1f} ms  moving {1000 * moving:6.1f} ms",
                    flush=True,
                )
    base = {r["points"]: r for r in rows if r["budget"] == min(args.budgets)}
    for r in rows:
        b = base[r["points"]]
        r["redraw_vs_smallest_budget"] = round(r["redraw_ms"] / max(b["redraw_ms"], 1e-9), 2)
    print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()
