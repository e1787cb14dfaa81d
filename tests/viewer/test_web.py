"""The browser viewer (`pointseg view --web` / `--export-html`): data, page, server, and a real
headless Chromium that loads the page, draws it with WebGL and is checked pixel by pixel.

The browser tests skip, with the reason, only when Chromium, chromedriver or Selenium is missing;
scripts/setup.sh installs them (apt-get chromium chromium-driver as root; pip selenium).
"""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from pointseg.cli import main
from pointseg.data.s3dis import CLASS_COLORS, CLASSES
from pointseg.errors import ConfigError
from visualize.scene import CORRECT_COLOR, DIFF_COLORS, WRONG_COLOR, Scene
from visualize.web_data import build_payload, decode_array, dequantize
from visualize.web_page import render_page
from visualize.web_server import access_lines, is_loopback, make_server

from .browser import Browser, colour_counts, find_browser
from .conftest import write_eval

ROOT = Path(__file__).resolve().parents[2]
C = {name: i for i, name in enumerate(CLASSES)}
# patches seen from above (ceiling hidden): class, x0, y0, height
PATCHES = [
    ("table", 0.3, 0.3, 0.75),
    ("chair", 1.5, 0.3, 0.45),
    ("sofa", 2.7, 0.3, 0.40),
    ("bookcase", 0.3, 1.8, 1.80),
    ("board", 1.5, 1.8, 1.20),
    ("clutter", 2.7, 1.8, 0.60),
]


def make_class_room(step: float = 0.04) -> dict[str, np.ndarray]:
    """4 x 3 m room: floor, ceiling, two walls and six 0.9 m patches of other classes.

    Model `good` calls the table a chair; model `bad` calls the floor left of x = 1.2 m a wall
    and the sofa clutter."""
    xs, ys = np.arange(0, 4, step), np.arange(0, 3, step)
    fx, fy = (a.ravel() for a in np.meshgrid(xs, ys, indexing="ij"))
    parts = [
        (np.c_[fx, fy, np.zeros_like(fx)], "floor"),
        (np.c_[fx, fy, np.full_like(fx, 2.6)], "ceiling"),
    ]
    zs = np.arange(0, 2.6, step)
    wy, wz = (a.ravel() for a in np.meshgrid(ys, zs, indexing="ij"))
    parts += [(np.c_[np.full_like(wy, x), wy, wz], "wall") for x in (0.0, 3.96)]
    px = np.arange(0, 0.9, step)
    gx, gy = (a.ravel() for a in np.meshgrid(px, px, indexing="ij"))
    for name, x0, y0, z in PATCHES:
        parts.append((np.c_[gx + x0, gy + y0, np.full_like(gx, z)], name))
    xyz = np.concatenate([p for p, _ in parts]).astype(np.float32)
    label = np.concatenate([np.full(len(p), C[n]) for p, n in parts]).astype(np.uint8)
    rgb = np.random.default_rng(0).integers(40, 220, size=(len(xyz), 3)).astype(np.uint8)
    good = label.copy()
    good[label == C["table"]] = C["chair"]
    bad = label.copy()
    bad[(label == C["floor"]) & (xyz[:, 0] < 1.2)] = C["wall"]
    bad[label == C["sofa"]] = C["clutter"]
    return {"xyz": xyz, "rgb": rgb, "label": label, "good": good, "bad": bad}


@pytest.fixture(scope="module")
def croom():
    return make_class_room()


@pytest.fixture(scope="module")
def scene(croom):
    r = croom
    return Scene(
        r["xyz"], r["rgb"], r["label"], {"good": r["good"], "bad": r["bad"]}, title="Area_1/room_1"
    )


@pytest.fixture(scope="module")
def evals(croom, tmp_path_factory):
    root = tmp_path_factory.mktemp("evals")
    return [
        write_eval(root, "good", croom, croom["good"]),
        write_eval(root, "bad", croom, croom["bad"]),
    ]


# ------------------------------------------------------------------------------ data and page
def test_payload_round_trip(scene):
    p = build_payload(scene)
    m = p.meta
    assert m["shown"] == scene.num_points and m["voxel"] == 0.0
    assert np.array_equal(np.sort(p.index), np.arange(scene.num_points))  # all, shuffled
    assert not np.array_equal(p.index, np.arange(scene.num_points))
    q = decode_array(m, p.blob, "pos")
    xyz = dequantize(q, m["lo"], m["hi"])
    span = np.ptp(scene.xyz, axis=0).max()
    assert np.abs(xyz - scene.xyz[p.index]).max() <= span / 65535 + 1e-6
    np.testing.assert_array_equal(decode_array(m, p.blob, "gt"), scene.label[p.index])
    np.testing.assert_array_equal(decode_array(m, p.blob, "rgb"), scene.rgb[p.index])
    for i, model in enumerate(scene.models):
        np.testing.assert_array_equal(
            decode_array(m, p.blob, f"pred{i}"), scene.preds[model][p.index]
        )
    # the legend's IoU, OA and mIoU are the metrics of every point
    cm = scene.confusion("bad")
    sofa = next(c for c in m["classes"] if c["name"] == "sofa")
    assert sofa["iou"]["bad"] == 0.0 and sofa["iou"]["good"] == 100.0
    floor = next(c for c in m["classes"] if c["name"] == "floor")
    assert floor["iou"]["bad"] == pytest.approx(100 * cm.iou()[C["floor"]], abs=0.01)
    assert floor["gt_points"] == int((scene.label == C["floor"]).sum())
    assert m["metrics"]["bad"]["miou"] == pytest.approx(100 * cm.miou(), abs=0.01)
    # diff legend counts on every point: good right & bad wrong = bad's floor and sofa errors
    a_right = int(((scene.label == C["floor"]) & (scene.xyz[:, 0] < 1.2)).sum()) + int(
        (scene.label == C["sofa"]).sum()
    )
    assert m["diff_counts"]["good\tbad"][0] == a_right
    assert m["diff_counts"]["bad\tgood"][1] == a_right


def test_payload_without_labels(croom):
    r = croom
    bare = build_payload(Scene(r["xyz"], r["rgb"]))  # a scan: colours only
    m = bare.meta
    assert [p["name"] for p in m["panels"]] == ["RGB"] and m["initial"]["coloring"] == "rgb"
    assert [k for k, v in m["colorings"].items() if v["ok"]] == ["rgb"]
    assert set(m["arrays"]) == {"pos", "rgb"} and m["classes"] == []
    two = build_payload(
        Scene(r["xyz"], None, None, {"A": r["good"], "B": r["bad"]}), coloring="diff"
    )
    m = two.meta
    assert {k for k, v in m["colorings"].items() if v["ok"]} == {"rgb", "pred", "diff"}
    assert not m["has_gt"] and not m["has_rgb"] and m["metrics"] == {}
    disagree = int((r["good"] != r["bad"]).sum())
    assert m["diff_counts"]["A\tB"][3] == disagree  # without ground truth: agree / disagree


def test_voxel_index_is_first_point_per_voxel():
    from visualize.scene import voxel_index

    xyz = np.random.default_rng(1).random((20000, 3)) * (4, 3, 2.5)
    for v in (0.05, 0.3):
        cell = np.floor((xyz - xyz.min(axis=0)) / v).astype(np.int64)
        _, first = np.unique(cell, axis=0, return_index=True)  # reference: sort-based
        np.testing.assert_array_equal(voxel_index(xyz, v), np.sort(first))


def test_budget_downsamples_for_display_only(scene):
    p = build_payload(scene, budget=9000)
    m = p.meta
    assert m["shown"] * len(m["panels"]) <= 9000 and m["voxel"] > 0
    assert m["num_points"] == scene.num_points
    full = build_payload(scene)
    assert m["metrics"] == full.meta["metrics"] and m["classes"] == full.meta["classes"]
    # one point per occupied voxel, the same points in every panel (one index for all)
    assert len(np.unique(p.index)) == m["shown"] == len(decode_array(m, p.blob, "gt"))
    cells = np.floor((scene.xyz[p.index] - scene.xyz.min(axis=0)) / m["voxel"]).astype(int)
    assert len(np.unique(cells, axis=0)) == m["shown"]


def test_page_is_self_contained(scene):
    page = render_page(build_payload(scene))
    # no external resource of any kind: no URL, no src=, no import
    assert not re.search(r"https?://", page), re.search(r".{40}https?://.{40}", page).group(0)
    assert not re.search(r"<(script|link|img|iframe)\b[^>]*\s(src|href)\s*=", page)
    assert "import(" not in page and "@import" not in page
    meta = json.loads(re.search(r'id="pointseg-meta">(.*?)</script>', page, re.S).group(1))
    data = re.search(r'id="pointseg-data">(.*?)</script>', page, re.S).group(1)
    assert len(base64.b64decode(data)) == meta["blob_bytes"]
    # a panel name with markup cannot break out of the page
    evil = Scene(scene.xyz, None, scene.label, {"</script><b>x": scene.preds["good"]})
    page = render_page(build_payload(evil))
    assert "</script><b>" not in page


def test_export_html_cli(evals, tmp_path, capsys):
    out = tmp_path / "sub" / "comparison.html"
    assert main(["view", *map(str, evals), "--export-html", str(out), "--budget", "12000"]) == 0
    said = capsys.readouterr().out
    assert f"wrote {out}" in said and "KB" in said and "per panel shown" in said
    assert out.stat().st_size > 10_000


# ------------------------------------------------------------------------------ bad input
def test_bad_inputs(evals, croom, tmp_path, capsys):
    # an unwritable output path: its "folder" is a file
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert main(["view", str(evals[0]), "--export-html", str(blocker / "c.html")]) != 0
    err = capsys.readouterr().err
    assert str(blocker / "c.html") in err and "not a folder" in err
    assert main(["view", str(evals[0]), "--export-html", str(tmp_path)]) != 0
    assert "is a folder" in capsys.readouterr().err
    # missing prediction files
    empty = tmp_path / "run" / "eval_area1" / "predictions"
    empty.mkdir(parents=True)
    assert main(["view", str(empty.parent), "--export-html", str(tmp_path / "x.html")]) != 0
    assert "no predictions found" in capsys.readouterr().err
    assert main(["view", str(tmp_path / "nope"), "--web"]) != 0
    assert f"{tmp_path / 'nope'}: no such file" in capsys.readouterr().err
    # panels of different rooms (same name, other points)
    other = {k: v[: len(v) // 2] for k, v in croom.items()}
    odd = write_eval(tmp_path, "other", other, other["good"])
    assert main(["view", str(evals[0]), str(odd), "--export-html", str(tmp_path / "y.html")]) != 0
    err = capsys.readouterr().err
    assert "Area_1_room_1.npz" in err and "predicted points but the room" in err
    # a cloud without points
    zero = {k: v[:0] for k, v in croom.items()}
    z = write_eval(tmp_path, "zero", zero, zero["good"])
    assert main(["view", str(z), "--export-html", str(tmp_path / "z.html")]) != 0
    err = capsys.readouterr().err
    assert "Area_1_room_1.npz" in err and "no points" in err
    assert not (tmp_path / "z.html").exists()


# ------------------------------------------------------------------------------ server
def _get(url: str, **headers) -> bytes:
    req = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(req, timeout=20) as r:
        return r.read()


def test_server_serves_page_and_data_and_survives_disconnects(scene):
    payload = build_payload(scene)
    server = make_server(payload, "127.0.0.1", 0)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    base = f"http://127.0.0.1:{server.port}/"
    try:
        page = _get(base).decode()
        assert 'id="pointseg-meta"' in page and '"data_url":"data.bin"' in page
        assert _get(base + "data.bin") == payload.blob
        import gzip

        assert (
            gzip.decompress(_get(base + "data.bin", **{"Accept-Encoding": "gzip"})) == payload.blob
        )
        assert json.loads(_get(base + "meta.json"))["shown"] == scene.num_points
        with pytest.raises(urllib.error.HTTPError):
            _get(base + "../etc/passwd")
        with pytest.raises(urllib.error.HTTPError, match="403"):  # DNS rebinding
            _get(base + "data.bin", Host=f"attacker.example:{server.port}")
        assert _get(base, Host=f"localhost:{server.port}").startswith(b"<!doctype html>")
        # tabs that go away: mid-request, mid-transfer, and a silent connection
        for request in (b"GET /da", b"GET /data.bin HTTP/1.1\r\nHost: x\r\n\r\n"):
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(request)
            if request.endswith(b"\r\n\r\n"):
                s.recv(1000)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()  # RST
        idle = socket.create_connection(("127.0.0.1", server.port))
        assert _get(base + "data.bin") == payload.blob  # still serving, other tabs unaffected
        idle.close()
    finally:
        server.shutdown()
        server.server_close()


def test_server_port_in_use_and_host_warning(scene):
    payload = build_payload(scene, budget=3000)
    first = make_server(payload, "127.0.0.1", 0)
    try:
        with pytest.raises(
            ConfigError, match=rf"port {first.port} on 127.0.0.1 is already in use.*--port \d+"
        ):
            make_server(payload, "127.0.0.1", first.port)
        lines = access_lines(first, "127.0.0.1")
        assert f"http://localhost:{first.port}/" in lines[0]
        assert f"ssh -N -L {first.port}:localhost:{first.port}" in lines[1]
        assert not any("WARNING" in s for s in lines)
        assert any("WARNING" in s and "0.0.0.0" in s for s in access_lines(first, "0.0.0.0"))
    finally:
        first.server_close()
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("")
    with pytest.raises(ConfigError, match="not an address of this machine"):
        make_server(payload, "203.0.113.7", 0)


# ------------------------------------------------------------------------------ real browser
_BROWSER, _DRIVER, _WHY = find_browser()
needs_browser = pytest.mark.skipif(bool(_WHY), reason=_WHY)


@pytest.fixture(scope="module")
def browser():
    b = Browser(_BROWSER, _DRIVER)
    yield b
    b.quit()


PALETTE = [tuple(int(v) for v in c) for c in CLASS_COLORS]


def _classes_in(img, box, min_pixels: int = 30) -> set[str]:
    counts = colour_counts(img, box, PALETTE)
    return {CLASSES[i] for i in np.flatnonzero(counts >= min_pixels)}


@needs_browser
def test_exported_html_offline_in_chromium(browser, evals, tmp_path):
    out = tmp_path / "comparison.html"
    assert main(["view", *map(str, evals), "--export-html", str(out), "--point-size", "4"]) == 0
    browser.offline(True)
    try:
        browser.load(out.as_uri())
        external = browser.js(
            "return performance.getEntriesByType('resource').map(e => e.name)"
            ".filter(n => !n.startsWith('data:') && !n.startsWith('file:'))"
        )
        assert external == []
        img = browser.screenshot()
        boxes = browser.panels()
        assert len(boxes) == 3
        seen = [_classes_in(img, b) for b in boxes]
        for s in seen:
            assert len(s) >= 6, seen
        assert "ceiling" not in seen[0]  # hidden at start, as in the Open3D viewer
        assert {"table", "sofa", "bookcase", "board", "clutter", "floor"} <= seen[0]
        assert "table" not in seen[1] and "sofa" not in seen[2]  # the models' mistakes
        labels = browser.js(
            "return [...document.querySelectorAll('.panel-label')].map(e => e.textContent)"
        )
        assert labels[0] == "ground truth" and labels[1].startswith("good (mIoU")
    finally:
        browser.offline(False)


@needs_browser
def test_ui_colouring_isolation_hiding(browser, evals, tmp_path):
    from selenium.webdriver.common.by import By

    out = tmp_path / "c.html"
    assert main(["view", *map(str, evals), "--export-html", str(out), "--point-size", "4"]) == 0
    browser.load(out.as_uri())
    d = browser.driver
    boxes = browser.panels()
    before = browser.screenshot()
    # colouring through a GUI button: errors
    browser.after(lambda: d.find_element(By.ID, "color-errors").click())
    img = browser.screenshot()
    assert not np.array_equal(img, before)
    grey_red = [tuple(CORRECT_COLOR), tuple(WRONG_COLOR)]
    good, bad = (colour_counts(img, boxes[i], grey_red) for i in (1, 2))
    assert good[0] > 1000 and good[1] > 100 and bad[1] > 500
    assert len(_classes_in(img, boxes[0])) >= 6  # the truth panel keeps its classes
    assert _classes_in(img, boxes[1]) == set() == _classes_in(img, boxes[2])  # grey / red only
    # the same through the keyboard shortcut: 5 = difference of the two models
    body = d.find_element(By.ID, "gl")
    browser.after(lambda: body.send_keys("5"))
    img = browser.screenshot()
    diff = colour_counts(img, boxes[2], [tuple(c) for c in DIFF_COLORS])
    assert diff[0] > 500 and diff[2] > 1000  # good right & bad wrong; both right
    # isolate a class from the legend: only the table remains in the truth panel
    browser.after(lambda: body.send_keys("3"))
    browser.after(
        lambda: d.find_element(By.CSS_SELECTOR, "tr[data-class='table'] td.name button").click()
    )
    img = browser.screenshot()
    assert _classes_in(img, boxes[0], 1) == {"table"}
    assert _classes_in(img, boxes[1], 1) == {"chair"}  # good predicts the table as chair
    assert _classes_in(img, boxes[2], 1) == {"table"}
    browser.after(lambda: body.send_keys("a"))  # A: all classes again
    # hide a class (tick its box): the floor goes from every panel
    browser.after(lambda: d.find_element(By.CSS_SELECTOR, "tr[data-class='floor'] input").click())
    img = browser.screenshot()
    for b in boxes:
        assert "floor" not in _classes_in(img, b, 1)
        assert len(_classes_in(img, b)) >= 5
    # H shows the ceiling: from above, it covers the room
    browser.after(lambda: body.send_keys("h"))
    img = browser.screenshot()
    assert colour_counts(img, boxes[0], [PALETTE[C["ceiling"]]])[0] > 5000
    state = browser.js("return [window.pointseg.state.coloring, window.pointseg.state.hideCeiling]")
    assert state == ["pred", False]
    browser.after(lambda: body.send_keys("h"))

    # point size (+) covers more pixels; V moves every panel to the next camera preset; a drag
    # rotates all panels together (one camera)
    def ink(img):
        return [int((img[y0:y1, x0:x1] < 250).any(axis=2).sum()) for x0, y0, x1, y1 in boxes]

    browser.after(lambda: body.send_keys("---"))  # 4 -> 1 pixel
    small = ink(browser.screenshot())
    browser.after(lambda: body.send_keys("+++"))  # back to 4
    big = ink(browser.screenshot())
    assert browser.js("return window.pointseg.state.pointSize") == 4
    assert all(b > 2 * a for a, b in zip(small, big, strict=True)), (small, big)
    top = browser.screenshot()
    browser.after(lambda: body.send_keys("v"))
    assert browser.js("return window.pointseg.state.view") == "iso"
    iso = browser.screenshot()
    assert not np.array_equal(top, iso)
    from selenium.webdriver.common.action_chains import ActionChains

    yaw = browser.js("return window.pointseg.state.cam.yaw")
    browser.after(
        lambda: ActionChains(d).move_to_element(body).click_and_hold().move_by_offset(60, 0)
        .release().perform()
    )  # fmt: skip
    assert browser.js("return window.pointseg.state.cam.yaw") == pytest.approx(yaw - 24, abs=4)
    turned = browser.screenshot()
    for x0, y0, x1, y1 in boxes:
        assert not np.array_equal(turned[y0:y1, x0:x1], iso[y0:y1, x0:x1])
    # S downloads a PNG of the canvas with a title strip: the same pixels as the page shows
    # (once the drag's level-of-detail frames are over and the full frame is drawn)
    browser.wait("return !window.pointseg.moving")
    turned = browser.screenshot()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    d.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    body.send_keys("s")
    shot = browser.wait_for_file(downloads / "pointseg_view_1.png")
    from PIL import Image

    png = np.asarray(Image.open(shot).convert("RGB"))
    x0, y0, x1, y1 = boxes[0]
    cw, ch = browser.js("const c = document.getElementById('gl'); return [c.width, c.height]")
    assert png.shape[1] == cw and png.shape[0] > ch
    head = png.shape[0] - ch
    left, top = browser.js(
        "const r = document.getElementById('gl').getBoundingClientRect(); return [r.left, r.top]"
    )
    page = turned[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2]
    # the canvas may sit at a fractional CSS offset: the PNG matches the page exactly at one
    # pixel shift
    matches = []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            r0, c0 = head + y0 + 2 - round(top) + dy, x0 + 2 - round(left) + dx
            crop = png[r0 : r0 + page.shape[0], c0 : c0 + page.shape[1]]
            matches.append(crop.shape == page.shape and np.array_equal(crop, page))
    assert any(matches)


@needs_browser
def test_served_page_in_chromium(browser, evals):
    proc = subprocess.Popen(
        [sys.executable, "-m", "pointseg", "view", *map(str, evals), "--web", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        url, said, end = None, [], time.monotonic() + 120
        while url is None and time.monotonic() < end:
            line = proc.stdout.readline()
            if not line:
                break
            said.append(line)
            m = re.search(r"serving on (http://\S+)", line)
            url = m.group(1) if m else None
        assert url, "".join(said)
        assert "ssh -N -L" in proc.stdout.readline()
        browser.load(url)
        img = browser.screenshot()
        boxes = browser.panels()
        assert len(boxes) == 3
        for b in boxes:
            assert len(_classes_in(img, b)) >= 6
        browser.driver.get("about:blank")  # the tab goes away
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@needs_browser
def test_real_room_downsampled_in_chromium(browser, shared_data, tmp_path, capsys):
    """A real S3DIS room (Area_5/conferenceRoom_1, 309 k points) parsed from its raw files,
    shown voxel-downsampled to a 150 k point budget: the real class colours in all 3 panels."""
    from pointseg.data.s3dis import parse_room

    raw = shared_data / "s3dis_raw" / "Area_5" / "conferenceRoom_1"
    if not raw.is_dir():
        pytest.skip(f"{raw} not found")
    room, _ = parse_room(raw)
    r = {"xyz": room.xyz, "rgb": room.rgb, "label": room.label}
    wrong = room.label.copy()
    wrong[room.label == C["chair"]] = C["table"]
    runs = [
        write_eval(tmp_path, name, r, pred, name="Area_5_conferenceRoom_1")
        for name, pred in (("same", room.label), ("chairs_wrong", wrong))
    ]
    out = tmp_path / "real.html"
    assert main(["view", *map(str, runs), "--export-html", str(out), "--budget", "150000"]) == 0
    said = capsys.readouterr().out
    assert "per panel shown" in said and "voxel" in said
    browser.load(out.as_uri())
    status = browser.js("return document.getElementById('status').textContent")
    assert "for display only" in status and f"{len(room.xyz):,} points" in status
    img = browser.screenshot()
    seen = [_classes_in(img, b) for b in browser.panels()]
    assert all(len(s) >= 6 for s in seen), seen
    assert "chair" in seen[0] and "chair" not in seen[2]
