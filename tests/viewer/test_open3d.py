"""The Open3D viewer for real: a window on a private Xvfb, screenshots checked pixel by pixel.

Each check runs `pointseg` / the viewer in a subprocess with DISPLAY unset, so the code under
test starts its own Xvfb (as `pointseg view --screenshot` does on a headless machine). These
tests skip, with the reason, only when Open3D or Xvfb is missing; `scripts/setup.sh` installs
both (pip open3d-cpu; apt-get libgl1 libusb-1.0-0 xvfb as root).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pointseg.cli import main
from pointseg.data.s3dis import CLASS_COLORS
from visualize.scene import CORRECT_COLOR, WRONG_COLOR

from .conftest import FLOOR, TABLE, WALL, WRONG_X

ROOT = Path(__file__).resolve().parents[2]


def _open3d_problem() -> str | None:
    try:
        import open3d  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"Open3D unavailable ({exc}); scripts/setup.sh installs open3d-cpu, libgl1, libusb-1.0-0"
    if shutil.which("Xvfb") is None:
        return "Xvfb not installed (apt-get install -y xvfb; scripts/setup.sh does it as root)"
    return None


pytestmark = pytest.mark.skipif(_open3d_problem() is not None, reason=str(_open3d_problem()))


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}  # the viewer starts Xvfb
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


SHOT_SCRIPT = """
import json, sys
import numpy as np
from visualize.scene import Scene
from visualize.viewer import screenshot

d = np.load(sys.argv[1])
scene = Scene(d["xyz"], d["rgb"], d["label"], {"good": d["good"], "bad": d["bad"]}, title="Area_1/room_1")
shot = screenshot(scene, sys.argv[2], coloring="errors", view="top", point_size=7, width=1200)
xyz, label = d["xyz"], d["label"]
floor = label == 1
wrong = floor & (xyz[:, 0] > 0.3) & (xyz[:, 0] < 1.2) & (xyz[:, 1] > 0.3) & (xyz[:, 1] < 2.7)
right = floor & (xyz[:, 0] > 1.8) & (xyz[:, 0] < 2.3) & (xyz[:, 1] > 0.3) & (xyz[:, 1] < 2.7)
json.dump({
    "gt_floor": shot.project(xyz[wrong | right], 0).tolist(),
    "bad_wrong": shot.project(xyz[wrong], 2).tolist(),
    "bad_right": shot.project(xyz[right], 2).tolist(),
    "good_floor": shot.project(xyz[wrong], 1).tolist(),
    "centres": [shot.project(xyz.mean(axis=0, keepdims=True), i)[0].tolist() for i in range(3)],
    "header": shot.header,
}, open(sys.argv[3], "w"))

# The ModelNet grid in the same window session: shapes 0 and 2 right, shape 1 wrong.
from visualize.shapes import ShapeGrid, grid_screenshot
rng = np.random.default_rng(0)
pts = rng.normal(size=(3, 400, 3)).astype(np.float32)
pts /= np.linalg.norm(pts, axis=2).max(axis=1)[:, None, None]
grid = ShapeGrid(pts, np.array([0, 1, 2]), np.array([0, 2, 2]), ["cup", "lamp", "vase"], "grid")
grid_screenshot(grid, sys.argv[4], width=900)

# What the keys do, on the interactive window (3-D labels, bindings), state changed as keys do.
from visualize.display import display_for
from visualize.viewer import Viewer
with display_for(interactive=False):
    v = Viewer(scene, point_size=7, width=1200)
    v.open(visible=True)
    v._labels_3d()
    v._bind()
    v.set_coloring("pred")     # key 3
    v.cycle_class(+1)          # key C: ceiling
    v.cycle_class(+1)          # key C: floor
    v.toggle_ceiling()         # key H
    v.refresh()
    v.reset_view()
    v.vis.capture_screen_image(sys.argv[5], do_render=True)
    cam = v.camera_now()
    v.close()
json.dump({
    "isolated_wrong": cam.project(xyz[wrong] + v.offsets[2]).tolist(),
    "isolated_right": cam.project(xyz[right] + v.offsets[2]).tolist(),
    "table_gt": cam.project(xyz[label == 7] + v.offsets[0]).tolist(),
}, open(sys.argv[6], "w"))
"""


def _share(img: np.ndarray, pixels, rgb) -> float:
    """Fraction of the pixels (column, row) that have exactly colour rgb."""
    uv = np.rint(np.asarray(pixels)).astype(int)
    got = img[uv[:, 1], uv[:, 0]]
    return float((got == np.asarray(rgb, np.uint8)).all(axis=1).mean())


def test_window_screenshot_pixels(tmp_path, room):
    np.savez(tmp_path / "room.npz", **room)
    script = tmp_path / "shot.py"
    script.write_text(SHOT_SCRIPT)
    png, info = tmp_path / "shot.png", tmp_path / "shot.json"
    grid_png, window_png, window_info = (
        tmp_path / "grid.png",
        tmp_path / "w.png",
        tmp_path / "w.json",
    )
    r = _run(
        [
            str(script),
            str(tmp_path / "room.npz"),
            str(png),
            str(info),
            str(grid_png),
            str(window_png),
            str(window_info),
        ]
    )
    assert r.returncode == 0, r.stderr[-3000:]
    img = np.asarray(Image.open(png).convert("RGB"))
    pos = json.loads(info.read_text())
    assert WRONG_X == 1.5
    # ground-truth panel: its floor region has the floor colour (the ceiling above is hidden)
    assert _share(img, pos["gt_floor"], CLASS_COLORS[FLOOR]) > 0.95
    # errors panel of "bad": red where the test made the floor wrong, grey where it is right
    assert _share(img, pos["bad_wrong"], WRONG_COLOR) > 0.95
    assert _share(img, pos["bad_right"], CORRECT_COLOR) > 0.95
    assert _share(img, pos["good_floor"], CORRECT_COLOR) > 0.95
    # a label above each panel: dark text pixels in the header, around the panel's centre column
    header = img[: pos["header"]]
    for cx, _ in pos["centres"]:
        band = header[:, max(int(cx) - 60, 0) : int(cx) + 60]
        assert (band.max(axis=2) < 100).sum() > 30
    # and the legend below the frame: swatches of the floor colour, grey and red
    legend = img[-40:].reshape(-1, 3)
    for rgb in (CLASS_COLORS[FLOOR], CORRECT_COLOR, WRONG_COLOR):
        assert (legend == rgb).all(axis=1).sum() > 50
    # ModelNet grid: three shapes in a row, the middle one (lamp -> vase) red, the others blue
    from visualize.shapes import RIGHT_COLOR
    from visualize.shapes import WRONG_COLOR as SHAPE_WRONG

    grid = np.asarray(Image.open(grid_png).convert("RGB"))[pos["header"] : -40]  # no legend
    w = grid.shape[1]
    for i, rgb in enumerate((RIGHT_COLOR, SHAPE_WRONG, RIGHT_COLOR)):
        part = grid[:, i * w // 3 : (i + 1) * w // 3].reshape(-1, 3)
        other = SHAPE_WRONG if rgb == RIGHT_COLOR else RIGHT_COLOR
        assert (part == rgb).all(axis=1).sum() > 200
        assert (part == other).all(axis=1).sum() < 20
    # the window after keys 3, C, C, H: only floor (truth or predicted), predictions coloured;
    # the floor "bad" called a wall shows in the wall colour, its right floor in the floor colour
    win = np.asarray(Image.open(window_png).convert("RGB"))
    pos = json.loads(window_info.read_text())
    assert _share(win, pos["isolated_wrong"], CLASS_COLORS[WALL]) > 0.95
    assert _share(win, pos["isolated_right"], CLASS_COLORS[FLOOR]) > 0.95
    assert _share(win, pos["table_gt"], CLASS_COLORS[TABLE]) < 0.05  # tables are hidden
    # the 3-D panel labels: dark text pixels above the rooms
    top = int(min(p[1] for p in pos["isolated_right"]))
    assert (win[:top].max(axis=2) < 100).sum() > 200


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo"
    assert main(["demo", "--out", str(out), "--quick", "--no-progress"]) == 0
    return out


def test_view_demo_output_end_to_end(demo_out, tmp_path, capsys):
    shot = tmp_path / "demo.png"
    r = _run(["-m", "pointseg", "view", str(demo_out), "--screenshot", str(shot)])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "panels, left to right: ground truth | PlainGCN-5 | ResGCN-5" in r.stdout
    assert "PlainGCN-5 IoU" in r.stdout and "ResGCN-5 IoU" in r.stdout  # per-class IoU table
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[1] == 1600
    # every panel drew points: non-white pixels in each third of the frame
    frame = img[70:-60]
    for i in range(3):
        part = frame[:, i * 1600 // 3 : (i + 1) * 1600 // 3]
        assert (part.min(axis=2) < 250).sum() > 2000
    # the other outputs from the same inputs: matplotlib figure and one PLY per panel
    assert (
        main(
            [
                "view",
                str(demo_out),
                "--no-window",
                "--screenshot",
                str(tmp_path / "static.png"),
                "--export-ply",
                str(tmp_path / "ply"),
                "--color",
                "diff",
                "--view",
                "iso",
            ]
        )  # fmt: skip
        == 0
    )
    out = capsys.readouterr().out
    assert (tmp_path / "static.png").stat().st_size > 10_000
    assert len(list((tmp_path / "ply").glob("*.ply"))) == 3 and out.count("wrote ") == 4
    # a room of the cache with predictions computed on the fly by the demo's checkpoints
    room = next((demo_out / "work" / "cache").glob("Area_2/*.npz"))
    runs = [str(demo_out / "runs" / r) for r in ("plaingcn5", "resgcn5")]
    argv = ["view", str(room), "--checkpoint", *runs, "--no-window", "--no-progress",
            "--screenshot", str(tmp_path / "ckpt.png")]  # fmt: skip
    assert main(argv) == 0
    cap = capsys.readouterr()
    assert "panels, left to right: ground truth | plaingcn5 | resgcn5" in cap.out
    assert cap.err.count("[view] predicting") == 2


def test_modelnet_grid_from_an_eval_output(tmp_path, capsys):
    import torch

    from pointseg.checkpoint import save_checkpoint
    from pointseg.data import synthetic as synth
    from pointseg.models import DeepGCN, ModelConfig

    classes = sorted(synth.MODELNET_SYNTH_CLASSES)[:3]
    root = tmp_path / "meshes"
    synth.synth_modelnet(root, classes=classes, per_class=1, test_per_class=2, progress=False)
    cfg = ModelConfig(
        channels=8, num_blocks=2, k=4, fusion_channels=16, head_channels=(16,), stochastic=False,
        task="classification", in_channels=3, num_classes=3,
    )  # fmt: skip
    torch.manual_seed(0)
    model = DeepGCN(cfg)
    ckpt = save_checkpoint(
        tmp_path / "run" / "best.pt",
        model_config=cfg,
        model_state=model.state_dict(),
        meta={"classes": classes, "data": {"data": str(root)}},
    )
    assert main(["eval", "--checkpoint", str(ckpt), "--num-points", "128", "--no-progress"]) == 0
    ev = tmp_path / "run" / "eval_modelnet40"
    capsys.readouterr()
    assert main(["view", str(ev), "--no-window", "--screenshot", str(tmp_path / "s.png")]) == 0
    out = capsys.readouterr().out
    assert "6 shapes" in out and (tmp_path / "s.png").stat().st_size > 10_000
    from visualize.shapes import load_shapes

    grid = load_shapes(ev, 4)
    assert len(grid.label) == 4 and grid.class_names == classes
    # the grid's predictions are the evaluated model's (its accuracy on the shown shapes)
    from pointseg.metrics import ConfusionMatrix

    m = json.loads((ev / "metrics.json").read_text())
    full = ConfusionMatrix.from_matrix(m["protocols"]["classification"]["confusion"])
    all6 = load_shapes(ev, 6)
    assert ConfusionMatrix(3).update(all6.pred, all6.label) == full
