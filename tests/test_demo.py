"""`pointseg demo --quick`: every stage runs and every report file is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pointseg import demo as D
from pointseg.cli import main
from pointseg.data.s3dis import CLASSES
from pointseg.demo import report, settings
from pointseg.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_quick_demo_writes_the_complete_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quick", "--no-progress"]) == 0
    err = capsys.readouterr().err
    plain, res = "PlainGCN-5", "ResGCN-5"
    for name in (
        "report.md",
        "demo.json",
        "curves.png",
        "comparison.png",
        "confusion_plaingcn5.png",
        "confusion_resgcn5.png",
    ):
        path = out / name
        assert path.is_file() and path.stat().st_size > 0, name
        if name.endswith(".png"):
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    md = (out / "report.md").read_text()
    # Both models side by side in one per-class table keyed by class name, plus OA/mAcc/mIoU.
    assert f"| class | {plain} IoU | {res} IoU |" in md
    for cls in CLASSES:
        assert f"| {cls} |" in md
    for metric in ("OA", "mAcc", "mIoU"):
        assert f"| **{metric}** |" in md
    assert f"| {plain} |" in md and f"| {res} |" in md  # the overall table
    for image in (
        "curves.png",
        "comparison.png",
        "confusion_plaingcn5.png",
        "confusion_resgcn5.png",
    ):
        assert f"]({image})" in md
    # the browser comparison: one self-contained page, linked from the report
    page = (out / "comparison.html").read_text()
    assert 'id="pointseg-data">' in page and plain in page and res in page
    assert "](comparison.html)" in md
    summary = json.loads((out / "demo.json").read_text())
    for label in (plain, res):
        m = summary["models"][label]
        assert all(0.0 <= m[k] <= 1.0 for k in ("oa", "macc", "miou"))
        assert m["steps"] >= 1 and m["parameters"] > 0
    stages = summary["seconds"]
    # The two models train at the same time, in two processes (the default).
    assert {
        "synthesise rooms",
        "prepare room cache",
        "cut training blocks",
        f"train {plain} + {res} (parallel)",
        "total",
    } <= set(stages)
    assert stages["total"] >= sum(v for k, v in stages.items() if k != "total") - 1e-6
    for label in (plain, res):
        m = summary["models"][label]
        assert 0 < m["seconds"] <= stages[f"train {plain} + {res} (parallel)"]
        assert m["cpu_seconds"] > 0
        assert (out / "runs" / report.slug(label) / "train.log").is_file()
    # CPU time counts the training processes too (each trained ~all of its stage's time).
    assert summary["cpu_seconds"] >= max(m["cpu_seconds"] for m in summary["models"].values())
    # Stage times are printed as they finish; the report opens with both numbers and the gap.
    assert f"[demo] train {plain} + {res} (parallel):" in err and "stage times:" in err
    first = md.splitlines()[2]
    gap = 100 * (summary["models"][res]["miou"] - summary["models"][plain]["miou"])
    assert first.startswith(
        f"**{res}: {100 * summary['models'][res]['miou']:.1f} % mIoU; {plain}: "
    )
    assert f"gap {gap:+.1f} points" in first
    # The report says what the two models share and that only the block type differs.
    assert f"differing only in name: plaingcn28 ({plain}) / resgcn28 ({res})" in md
    # The numbers in the report are the ones measured (not hard-coded).
    assert f"{100 * summary['models'][res]['miou']:.2f}" in md


def test_configs_demo_yaml_mirrors_the_defaults():
    assert yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text()) == D.DEMO_DEFAULTS


def test_demo_config_merging_and_errors(tmp_path):
    quick = D.demo_config(quick=True)
    assert set(quick["models"]) == {"PlainGCN-5", "ResGCN-5"}
    assert (
        quick["synth"]["areas"] == 2 and quick["blocks"]["block_size"] == 1.0
    )  # merged, not replaced
    y = tmp_path / "d.yaml"
    y.write_text("train:\n  epochs: 2\n")
    cfg = D.demo_config(config=y)
    assert (
        cfg["train"]["epochs"] == 2
        and cfg["train"]["batch_size"] == D.DEMO_DEFAULTS["train"]["batch_size"]
    )
    y.write_text("epochs: 2\n")
    with pytest.raises(ConfigError, match="unknown demo config key 'epochs'"):
        D.demo_config(config=y)


def test_sequential_training_and_long_mode_comparison(tmp_path, monkeypatch):
    # parallel: false trains one model after the other in this process (same report).
    y = tmp_path / "seq.yaml"
    y.write_text("parallel: false\n")
    ref = D.run_demo(tmp_path / "seq", quick=True, config=y, progress=False)
    assert {"train PlainGCN-5", "train ResGCN-5"} <= set(ref["seconds"])
    # --long reports how far the 10-minute run (here: the quick one) is from it. Monkeypatched to
    # the quick sizes so the test stays fast; the comparison is what is checked.
    monkeypatch.setattr(settings, "LONG_OVERRIDES", D.QUICK_OVERRIDES)
    long = D.run_demo(tmp_path / "long", long=True, compare=tmp_path / "seq", progress=False)
    md = (tmp_path / "long" / "report.md").read_text()
    assert (
        long["long"]
        and long["compare"]["models"]["ResGCN-5"]["miou"] == ref["models"]["ResGCN-5"]["miou"]
    )
    behind = 100 * (long["models"]["ResGCN-5"]["miou"] - ref["models"]["ResGCN-5"]["miou"])
    assert "## The 10-minute demo vs this run" in md and f"{behind:.1f} points" in md
    with pytest.raises(ConfigError, match="exclude each other"):
        D.demo_config(quick=True, long=True)
