"""Multi-seed runs: `pointseg train <task> --seeds N` and `pointseg eval --checkpoint <parent>`.

Papers on Planetoid and the OGB leaderboards report the mean ± standard deviation of the test
metric over (usually 10) seeds. `train_seeds` trains one ordinary run per seed, each in its own
run folder ``<parent>/seed<k>/`` (the single-run entry point `pointseg.engine.train.train`, so
every run has its config.yaml, last.pt, best.pt, log.csv …), scores each seed's best.pt (chosen on
validation) on the test split with `pointseg.engine.evaluate.evaluate_checkpoint`, and writes

- ``<parent>/summary.json``: per-seed results and mean / std of every metric;
- ``<parent>/summary.md``: the same as a table (also printed to stderr);
- ``<parent>/seeds.json``: the manifest (task, recipe, per-seed wall time), so a second call
  resumes: finished seeds are not retrained (their metrics are reused), an interrupted seed
  continues from its last.pt (exact resume), missing seeds are trained.

The last line on stdout is one JSON object: ``{"task", "metric", "value", "std", "seeds", …}``
(``value`` = mean test metric). The standard deviation is the sample one (n − 1), as
``torch.std`` / ``np.std(ddof=1)`` in the OGB and PyG example scripts. Metrics that the engine
negates to make them "higher is better" (OGB regression: ``-rmse``) are reported as OGB does
(RMSE, lower is better).

Every seed of a parent must be the same task and the same recipe (the config without seed, run
folder, data paths and runtime settings); anything else is refused with the differing keys.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from pointseg.errors import ConfigError
from pointseg.io import atomic_write_text

MANIFEST = "seeds.json"
SUMMARY = "summary.json"
TABLE = "summary.md"
PREFIX = "seed"
# Config keys that may differ between the seeds of one parent (not part of the recipe).
RUNTIME_KEYS = frozenset(
    {
        "seed",
        "run",
        "out_dir",
        "data",
        "cache",
        "blocks",
        "threads",
        "device",
        "num_workers",
        "save_every",
        "max_steps",
        "tensorboard",
        "progress",
        "deterministic",
    }
)


# --------------------------------------------------------------------------------------- input
def parse_seeds(spec: str | int, base: int = 0) -> list[int]:
    """``"10"`` → ten seeds ``base … base+9``; ``"0,3,7"`` → those seeds. Repeats are an error."""
    text = str(spec).strip()
    if "," in text:
        try:
            seeds = [int(s) for s in text.split(",") if s.strip()]
        except ValueError:
            raise ConfigError(
                f"--seeds {text!r}: expected a count (10) or a comma-separated list of integer "
                "seeds (0,1,2)"
            ) from None
        if not seeds:
            raise ConfigError(f"--seeds {text!r}: the list holds no seed")
    else:
        try:
            n = int(text)
        except ValueError:
            raise ConfigError(
                f"--seeds {text!r}: expected a count (10) or a comma-separated list of integer "
                "seeds (0,1,2)"
            ) from None
        if n < 1:
            raise ConfigError(f"--seeds {n}: the number of seeds must be >= 1")
        seeds = list(range(int(base), int(base) + n))
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ConfigError(
            f"--seeds {text!r}: seed {', '.join(map(str, repeated))} is repeated; every seed is "
            "one run folder, so a repeat would train and count the same run twice"
        )
    if any(s < 0 for s in seeds):
        raise ConfigError(f"--seeds {text!r}: seeds must be >= 0")
    return seeds


def parent_dir(cfg) -> Path:
    """The parent folder of the seed runs: ``<out>/<--run>``, default ``<out>/<run name>_seeds``."""
    return Path(cfg.out_dir) / (cfg.run if cfg.run else f"{cfg.run_name}_seeds")


def recipe(cfg_dict: dict) -> dict:
    """The part of a TrainConfig dict that must agree between the seeds of one parent: no runtime
    keys, and none of the optional settings that the task does not read (`Task.settings`)."""
    from pointseg.tasks import get_task, task_names
    from pointseg.tasks.base import OPTIONAL_SETTINGS

    name = cfg_dict.get("dataset")
    unread = OPTIONAL_SETTINGS - get_task(name).settings if name in task_names() else frozenset()
    return {k: v for k, v in sorted(cfg_dict.items()) if k not in RUNTIME_KEYS and k not in unread}


def _seed_dirs(parent: Path) -> list[Path]:
    dirs = [d for d in parent.glob(f"{PREFIX}*") if d.is_dir() and d.name[len(PREFIX) :].isdigit()]
    return sorted(dirs, key=lambda d: int(d.name[len(PREFIX) :]))


def _run_config(run_dir: Path) -> dict:
    from pointseg.engine.config import TrainConfig, load_run_config

    return TrainConfig.from_dict(load_run_config(run_dir), str(run_dir / "config.yaml")).to_dict()


def _checkpoint_config(path: Path) -> dict:
    from pointseg.checkpoint import load_checkpoint

    cfg = load_checkpoint(path).get("train_config")
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: no training config inside; is this a pointseg run?")
    return cfg


def _diff(a: dict, b: dict) -> list[str]:
    """`a` = the reference recipe, `b` = the run's: "key=<run's> there, <reference's> here"."""
    return [
        f"{k}={b.get(k, '<unset>')!r} there, {a.get(k, '<unset>')!r} here"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]


def check_compatible(parent: Path, cfg_dict: dict | None = None) -> dict:
    """The recipe shared by the runs under `parent` (and `cfg_dict`, when given); ConfigError
    naming the folder and the differing keys when a run belongs to another task or recipe."""
    want = recipe(cfg_dict) if cfg_dict is not None else None
    source = "this command" if cfg_dict is not None else None
    manifest = _read_manifest(parent)
    items: list[tuple[str, dict]] = []
    if manifest.get("recipe"):
        items.append((str(parent / MANIFEST), manifest["recipe"]))
    for d in _seed_dirs(parent):
        if (d / "config.yaml").is_file():
            items.append((str(d), recipe(_run_config(d))))
        elif (d / "last.pt").is_file():  # no config.yaml (copied in?): the checkpoint's config
            items.append((str(d), recipe(_checkpoint_config(d / "last.pt"))))
    for where, got in items:
        if want is None:
            want, source = got, where
            continue
        if got.get("dataset") != want.get("dataset"):
            raise ConfigError(
                f"{where} holds a run of task {got.get('dataset')!r}, but {source} is "
                f"{want.get('dataset')!r}: the seeds of one parent folder must be one task; pick "
                "another --run / --out"
            )
        diff = _diff(want, got)
        if diff:
            raise ConfigError(
                f"{where} was trained with another recipe than {source} ("
                + "; ".join(diff)
                + "): the seeds of one parent must share it; pick another --run / --out, or "
                "pass --overwrite to retrain every seed"
            )
    if want is None:
        raise ConfigError(f"{parent} holds no seed runs ({PREFIX}<k>/ folders with config.yaml)")
    return want


def _read_manifest(parent: Path) -> dict:
    path = parent / MANIFEST
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc}); delete it to start afresh") from None


def _write_manifest(parent: Path, manifest: dict) -> None:
    atomic_write_text(parent / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def is_seeds_parent(path: str | Path) -> bool:
    """True for a folder of seed runs (a manifest or seed<k>/ runs, and no checkpoint itself)."""
    p = Path(path)
    if not p.is_dir() or (p / "best.pt").is_file() or (p / "last.pt").is_file():
        return False
    return (p / MANIFEST).is_file() or any((d / "last.pt").is_file() for d in _seed_dirs(p))


def _check_test_split(cfg) -> None:
    """Graph tasks: refuse before training when the data has no test split to score."""
    from pointseg.tasks import get_task, is_graph_task

    if not is_graph_task(cfg.dataset):
        return  # point-cloud tasks always have one (S3DIS test area, ModelNet test split)
    task = get_task(cfg.dataset)
    data = task.build_data(cfg, None)
    if task.num_samples(data, "test") == 0:
        raise ConfigError(
            f"{cfg.dataset}: the data under {cfg.data} has no test split (0 test "
            f"{'nodes' if task.level == 'node' else 'graphs'}), so --seeds has nothing to score; "
            "train single runs instead"
        )


# ------------------------------------------------------------------------------------ training
def _finished(run_dir: Path, epochs: int) -> bool:
    from pointseg.checkpoint import load_checkpoint

    last = run_dir / "last.pt"
    if not last.is_file():
        return False
    meta = load_checkpoint(last).get("meta") or {}
    return int(meta.get("epoch") or 0) >= int(epochs)


def train_seeds(
    cfg, seeds: list[int], *, overwrite: bool = False, eval_options: dict | None = None
) -> dict:
    """Train (or resume) one run per seed under `parent_dir(cfg)` and write the summary.

    Returns the summary dict; raises `TrainingInterrupted` (after the interrupted seed saved its
    last.pt) on SIGINT / SIGTERM. Seeds stopped early by ``max_steps`` are left unfinished and
    no summary is written (rerun the command to continue them)."""
    from pointseg.engine.train import train

    cfg.validate()
    parent = parent_dir(cfg)
    cfg_dict = cfg.to_dict()
    if parent.is_dir() and not overwrite:
        if (parent / "last.pt").is_file():
            raise ConfigError(
                f"{parent} holds a single run (last.pt); --seeds puts its runs under a parent "
                "folder: pick another --run"
            )
        if _read_manifest(parent) or _seed_dirs(parent):
            check_compatible(parent, cfg_dict)
    _check_test_split(cfg)
    parent.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(parent) if not overwrite else {}
    manifest.update(task=cfg.dataset, model=cfg.model, recipe=recipe(cfg_dict))
    manifest.setdefault("runs", {})
    for s in seeds:
        if overwrite:
            manifest["runs"].pop(str(s), None)
    manifest["seeds"] = (
        sorted(set(manifest.get("seeds", [])) | set(seeds)) if not overwrite else seeds
    )
    _write_manifest(parent, manifest)
    unfinished: list[int] = []
    for i, s in enumerate(seeds):
        run_cfg = dataclasses.replace(cfg, seed=s, out_dir=str(parent), run=f"{PREFIX}{s}")
        run_dir = run_cfg.run_dir
        if not overwrite and _finished(run_dir, cfg.epochs):
            print(f"seed {s} ({i + 1}/{len(seeds)}): finished in {run_dir}", file=sys.stderr)
            continue
        resume = not overwrite and (run_dir / "last.pt").is_file()
        print(
            f"seed {s} ({i + 1}/{len(seeds)}): {'resuming' if resume else 'training'} {run_dir}",
            file=sys.stderr,
        )
        t0 = time.perf_counter()
        try:
            train(run_cfg, resume=resume, overwrite=overwrite)
        finally:  # wall time of this segment, also when interrupted
            entry = manifest["runs"].setdefault(str(s), {"wall_s": 0.0})
            entry["wall_s"] = round(entry["wall_s"] + time.perf_counter() - t0, 3)
            entry.pop("metrics", None)  # retrained: score again
            _write_manifest(parent, manifest)
        if not _finished(run_dir, cfg.epochs):
            unfinished.append(s)
    if unfinished:
        print(
            f"seeds {unfinished} stopped before epoch {cfg.epochs} (max_steps); run the same "
            "command again to continue them; no summary written",
            file=sys.stderr,
        )
        return {}
    return summarize(parent, seeds, reuse=True, eval_options=eval_options)


# ---------------------------------------------------------------------------------- evaluation
def _eval_seed(run_dir: Path, options: dict) -> dict:
    """The test metrics of one seed's best.pt (``pointseg eval``'s output, printed to stderr)."""
    from pointseg.engine.evaluate import evaluate_checkpoint

    with contextlib.redirect_stdout(sys.stderr):
        return evaluate_checkpoint(run_dir, **options)


def flat_metrics(m: dict) -> tuple[str, dict[str, float]]:
    """(primary metric name, {name: value}) of one `evaluate_checkpoint` result: a graph task's
    ``value`` (``-rmse`` turned back into ``rmse``), ModelNet's OA / mAcc, S3DIS's per-protocol
    mIoU / OA."""
    if "value" in m and "metric" in m:
        name, value = str(m["metric"]), float(m["value"])
        if name.startswith("-"):
            name, value = name[1:], -value
        return name, {name: value, "loss": float(m.get("loss", math.nan))}
    if "oa" in m and "macc" in m:
        return "oa", {"oa": float(m["oa"]), "macc": float(m["macc"])}
    out: dict[str, float] = {}
    for proto, entry in (m.get("protocols") or {}).items():
        for k in ("miou", "oa"):
            if k in entry:
                out[f"{proto}_{k}"] = float(entry[k])
    if not out:
        raise ConfigError("cannot read a test metric from the evaluation result")
    return next(iter(out)), out


def _mean_std(values: list[float]) -> dict[str, float]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return {"mean": math.nan, "std": math.nan}
    return {
        "mean": statistics.fmean(vals),
        "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
    }


def summarize(
    parent: str | Path,
    seeds: list[int] | None = None,
    *,
    reuse: bool = False,
    eval_options: dict | None = None,
) -> dict:
    """Score every seed of `parent` (``reuse``: keep the manifest's metrics of seeds scored after
    their last training) and write summary.json / summary.md; print the table (stderr) and the
    summary line (stdout, last)."""
    from pointseg.checkpoint import load_checkpoint
    from pointseg.engine.evaluate import resolve_checkpoint
    from pointseg.engine.report import to_jsonable, write_json

    parent = Path(parent)
    shared = check_compatible(parent)
    manifest = _read_manifest(parent)
    manifest.setdefault("runs", {})
    dirs = {int(d.name[len(PREFIX) :]): d for d in _seed_dirs(parent)}
    if seeds is None:
        seeds = sorted(s for s, d in dirs.items() if (d / "last.pt").is_file())
    missing = [s for s in seeds if s not in dirs]
    if missing or not seeds:
        raise ConfigError(f"{parent}: no run folder for seeds {missing or '(none)'}")
    rows = []
    primary = None
    for s in seeds:
        run_dir = dirs[s]
        entry = manifest["runs"].setdefault(str(s), {})
        ckpt_path = resolve_checkpoint(run_dir)
        meta = load_checkpoint(ckpt_path).get("meta") or {}
        last_meta = load_checkpoint(run_dir / "last.pt").get("meta") or meta
        stamp = ckpt_path.stat().st_mtime_ns  # metrics of an older best.pt are not reused
        if reuse and entry.get("metrics") and entry.get("checkpoint_mtime_ns") == stamp:
            metrics = entry["metrics"]
        else:
            metrics = _eval_seed(run_dir, dict(eval_options or {}))
            metrics = {k: v for k, v in metrics.items() if k not in ("classes", "confusion")}
            entry.update(metrics=to_jsonable(metrics), checkpoint_mtime_ns=stamp)
        name, values = flat_metrics(metrics)
        if primary is not None and name != primary:
            raise ConfigError(f"{run_dir}: metric {name!r}, but the other seeds have {primary!r}")
        primary = name
        val = meta.get("best")
        if isinstance(val, (int, float)) and str(meta.get("metric", "")).startswith("-"):
            val = -val  # negated regression metric: back to RMSE
        rows.append(
            {
                "seed": s,
                "run": str(run_dir),
                **{f"test_{k}": v for k, v in values.items()},
                f"val_{name}": None if val is None else float(val),
                "best_epoch": meta.get("best_epoch"),
                "epochs": last_meta.get("epoch"),
                "wall_s": entry.get("wall_s"),
            }
        )
    _write_manifest(parent, manifest)
    keys = [k for k in rows[0] if k not in ("seed", "run")]
    stats = {k: _mean_std([r.get(k) for r in rows]) for k in keys}
    lower_better = primary in ("rmse", "mae")
    summary = {
        "task": shared.get("dataset"),
        "model": shared.get("model"),
        "metric": primary,
        "higher_is_better": not lower_better,
        "value": stats[f"test_{primary}"]["mean"],
        "std": stats[f"test_{primary}"]["std"],
        "seeds": list(seeds),
        "std_kind": "sample (n - 1)",
        "stats": stats,
        "per_seed": rows,
        "wall_s_total": sum(r["wall_s"] or 0.0 for r in rows),
        "recipe": shared,
    }
    write_json(parent / SUMMARY, summary)
    table = format_table(summary)
    atomic_write_text(parent / TABLE, table)
    print(table, file=sys.stderr)
    print(f"wrote {parent / SUMMARY} and {parent / TABLE}", file=sys.stderr)
    line = {k: summary[k] for k in ("task", "model", "metric", "value", "std", "seeds")}
    line["summary"] = str(parent / SUMMARY)
    print(json.dumps(to_jsonable(line), allow_nan=False))
    return summary


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def format_table(summary: dict) -> str:
    """Markdown table: one row per seed, then mean ± std of every column."""
    rows = summary["per_seed"]
    keys = [k for k in rows[0] if k not in ("seed", "run")]
    title = (
        f"{summary['task']} · {summary['model']} · {len(rows)} seeds · test {summary['metric']} "
        f"{_fmt(summary['value'])} ± {_fmt(summary['std'])}"
        + ("" if summary["higher_is_better"] else " (lower is better)")
    )
    head = "| seed | " + " | ".join(k.replace("_", " ") for k in keys) + " |"
    lines = [title, "", head, "|---:|" + "---:|" * len(keys)]
    for r in rows:
        digits = {"wall_s": 1}
        lines.append(
            f"| {r['seed']} | " + " | ".join(_fmt(r.get(k), digits.get(k, 4)) for k in keys) + " |"
        )
    st = summary["stats"]
    lines.append(
        "| mean ± std | "
        + " | ".join(
            f"{_fmt(st[k]['mean'], 1 if k in ('wall_s', 'best_epoch', 'epochs') else 4)} ± "
            f"{_fmt(st[k]['std'], 1 if k in ('wall_s', 'best_epoch', 'epochs') else 4)}"
            for k in keys
        )
        + " |"
    )
    return "\n".join(lines) + "\n"


def evaluate_seeds(parent: str | Path, **options: Any) -> dict:
    """`pointseg eval --checkpoint <parent>`: re-score every seed and rewrite the summary."""
    keep = {k: v for k, v in options.items() if v is not None}
    if keep.pop("out", None) is not None:
        raise ConfigError(
            f"{parent} is a folder of seed runs: each seed is scored into its own run folder and "
            "the summary goes to the parent, so --out does not apply"
        )
    return summarize(parent, None, reuse=False, eval_options=keep)


def run_seeds_cli(args, config_from_args) -> int:
    """`pointseg train <task> --seeds …` (commands/train.py): exit code 0, or the interrupted
    seed's exit code after it saved its last.pt. Resuming is implicit (--resume is accepted)."""
    from pointseg.engine.train import TrainingInterrupted

    if args.resume and args.overwrite:
        raise ConfigError("--resume and --overwrite contradict each other")
    args.resume = False  # the seed runs resume themselves; there is no single run to read
    cfg = config_from_args(args)
    seeds = parse_seeds(args.seeds, base=cfg.seed if args.seed is not None else 0)
    try:
        train_seeds(cfg, seeds, overwrite=args.overwrite)
    except TrainingInterrupted as exc:
        print(f"interrupted: {exc}; run the same command again to resume", file=sys.stderr)
        return exc.exit_code
    return 0
