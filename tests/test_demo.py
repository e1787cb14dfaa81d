"""`pointseg demo --quick`: every stage runs and every report file is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pointseg.cli import main
from pointseg.commands import demo as D
from pointseg.data.s3dis import CLASSES
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
    summary = json.loads((out / "demo.json").read_text())
    for label in (plain, res):
        m = summary["models"][label]
        assert all(0.0 <= m[k] <= 1.0 for k in ("oa", "macc", "miou"))
        assert m["steps"] >= 1 and m["parameters"] > 0
    stages = summary["seconds"]
    assert {
        "synthesise rooms",
        "prepare room cache",
        "cut training blocks",
        f"train {plain}",
        f"train {res}",
        "total",
    } <= set(stages)
    assert stages["total"] >= sum(v for k, v in stages.items() if k != "total") - 1e-6
    # Stage times are printed as they finish.
    assert "[demo] train ResGCN-5:" in err and "stage times:" in err
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
