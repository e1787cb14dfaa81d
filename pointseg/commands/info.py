"""`pointseg info`: versions, threads and which compiled kernels this install uses."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform

from pointseg import _native as _native_switch

# (module, what it speeds up, the fallback used without it)
NATIVE = [
    ("pointseg._native._parse", "S3DIS line parser (prepare)", "pandas C reader"),
    ("pointseg._native._select", "kNN selection (every dynamic graph)", "numpy partition"),
    ("pointseg._native._edge", "fused EdgeConv neighbour pass", "chunked torch ops"),
]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info",
        help="versions, threads and the compiled kernels in use",
        description=(
            "Print the versions of pointseg and its main dependencies, the thread settings, and "
            "which optional C extensions are built (built by `pip install -e .` when a C "
            "compiler exists; POINTSEG_NO_NATIVE=1 turns them off at run time)."
        ),
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def native_status() -> list[dict]:
    """One row per optional extension: name, purpose, built, active, fallback, detail."""
    disabled = _native_switch.disabled()
    rows = []
    for module, purpose, fallback in NATIVE:
        try:
            mod = importlib.import_module(module)
            built, detail = True, getattr(mod, "simd", "")
        except ImportError as exc:
            built, detail = False, str(exc)
        rows.append(
            {
                "extension": module.rsplit(".", 1)[-1].lstrip("_"),
                "purpose": purpose,
                "built": built,
                "active": built and not disabled,
                "fallback": fallback,
                "detail": detail,
            }
        )
    return rows


def collect() -> dict:
    import numpy
    import torch

    import pointseg

    return {
        "pointseg": pointseg.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "cuda": torch.cuda.is_available(),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", ""),
        "POINTSEG_NO_NATIVE": os.environ.get("POINTSEG_NO_NATIVE", ""),
        "native": native_status(),
    }


def run(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        if key != "native":
            print(f"{key:<20} {value}")
    print("\ncompiled kernels (optional C extensions):")
    for row in info["native"]:
        state = "active" if row["active"] else ("built, disabled" if row["built"] else "not built")
        extra = f" [{row['detail']}]" if row["built"] and row["detail"] else ""
        print(f"  {row['extension']:<7} {state:<16} {row['purpose']}{extra}")
        if not row["active"]:
            print(f"  {'':<7} {'':<16} → using the {row['fallback']}")
    if not all(r["built"] for r in info["native"]):
        print("\nRebuild the kernels with `pip install -e .` (needs a C compiler).")
    return 0
