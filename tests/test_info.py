"""`pointseg info`: reports the compiled kernels truthfully."""

from __future__ import annotations

import importlib
import json

from pointseg.cli import main


def _info(capsys) -> dict:
    assert main(["info", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_info_reports_each_extension_as_importable_or_not(capsys, monkeypatch):
    monkeypatch.delenv("POINTSEG_NO_NATIVE", raising=False)
    info = _info(capsys)
    assert [r["extension"] for r in info["native"]] == ["parse", "select", "edge"]
    for row in info["native"]:
        try:
            importlib.import_module(f"pointseg._native._{row['extension']}")
            importable = True
        except ImportError:
            importable = False
        assert row["built"] is importable
        assert row["active"] is importable


def test_no_native_env_marks_built_kernels_disabled(capsys, monkeypatch):
    monkeypatch.setenv("POINTSEG_NO_NATIVE", "1")
    info = _info(capsys)
    assert info["POINTSEG_NO_NATIVE"] == "1"
    assert not any(r["active"] for r in info["native"])
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert "compiled kernels" in text and "active " not in text.split("compiled kernels")[1]
