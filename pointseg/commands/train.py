"""`pointseg train s3dis|modelnet40 …`: YAML config + flags (flags win) + `--set key=value`.

Examples:
    pointseg train s3dis --config configs/s3dis_resgcn28.yaml --blocks data/s3dis_blocks --cache data/s3dis
    pointseg train s3dis --model plaingcn28 --test-area 5 --blocks data/s3dis_blocks --set model.channels=32
    pointseg train s3dis --run s3dis_resgcn28_area5 --resume            # continue from last.pt
    torchrun --nproc_per_node=2 -m pointseg train s3dis --blocks data/s3dis_blocks --run-name ddp
    pointseg train modelnet40 --data data/modelnet40_ply_hdf5_2048
    pointseg train cora --data data/planetoid            # graph tasks: see docs/graphs.md
"""

from __future__ import annotations

import argparse
import sys

from pointseg.commands._knn import add_knn_argument

# flag dest → TrainConfig key (flags the user did not give stay None and do not override)
_FLAG_KEYS = {
    "model": "model",
    "init": "init",
    "run": "run",
    "out": "out_dir",
    "cache": "cache",
    "blocks": "blocks",
    "data": "data",
    "test_area": "test_area",
    "val_fraction": "val_fraction",
    "num_points": "num_points",
    "max_train_samples": "max_train_samples",
    "max_val_samples": "max_val_samples",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "optimizer": "optimizer",
    "lr": "lr",
    "momentum": "momentum",
    "weight_decay": "weight_decay",
    "weight_decay_scope": "weight_decay_scope",
    "scheduler": "scheduler",
    "step_size": "step_size",
    "gamma": "gamma",
    "min_lr": "min_lr",
    "warmup_steps": "warmup_steps",
    "label_smoothing": "label_smoothing",
    "class_weights": "class_weights",
    "augment": "augment",
    "grad_clip": "grad_clip",
    "seed": "seed",
    "deterministic": "deterministic",
    "threads": "threads",
    "device": "device",
    "workers": "num_workers",
    "save_every": "save_every",
    "max_steps": "max_steps",
    "eval_every": "eval_every",
    "tensorboard": "tensorboard",
    "progress": "progress",
}


# Data flags a task gets when it reads the setting (`Task.settings`); the task may reword the help
# (`Task.setting_help`). The flags every task gets follow in `_add_arguments`.
_DATA_FLAGS: dict[str, tuple[tuple[str, ...], dict]] = {
    "blocks": (
        ("--blocks",),
        {
            "metavar": "DIR",
            "help": "HDF5 blocks root from `pointseg blocks s3dis` (or the published "
            "indoor3d_sem_seg_hdf5_data folder)",
        },
    ),
    "cache": (
        ("--cache",),
        {
            "metavar": "DIR",
            "help": "room cache from `pointseg prepare s3dis` (recorded for whole-room evaluation)",
        },
    ),
    "data": (("--data",), {"metavar": "DIR", "help": "dataset folder"}),
    "test_area": (
        ("--test-area",),
        {"type": int, "help": "held-out area, never trained or validated on (default 5)"},
    ),
    "val_fraction": (
        ("--val-fraction",),
        {"type": float, "help": "fraction of training samples held out for validation / best.pt"},
    ),
    "num_points": (("--num-points",), {"type": int, "help": "points per sample"}),
}


def _add_arguments(p: argparse.ArgumentParser, dataset: str) -> None:
    g = p.add_argument_group("configuration")
    g.add_argument(
        "--config",
        metavar="YAML",
        help="YAML file of TrainConfig keys (see configs/); flags override it",
    )
    g.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override any config key, e.g. --set lr=0.01 --set model.channels=32 --set model.num_blocks=7 (repeatable)",
    )
    g.add_argument(
        "--model", help="model preset (see `pointseg models`); default resgcn28 / resgcn28_modelnet"
    )
    g.add_argument(
        "--init",
        metavar="CHECKPOINT",
        help="start from this checkpoint's weights and architecture (e.g. a converted published "
        "model); the classifier is re-initialised when the data has another number of classes",
    )
    g.add_argument(
        "--run",
        "--run-name",
        dest="run",
        help="run folder name under --out (default: <dataset>_<model>[_area<k>]); under torchrun "
        "spell it --run-name (torchrun rejects --run as an ambiguous prefix of its --run-path)",
    )
    g.add_argument("--out", metavar="DIR", help="parent folder of runs (default checkpoints)")
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue the run from its last.pt (exact: same weights as an uninterrupted run)",
    )
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh even if the run folder already holds a run",
    )
    d = p.add_argument_group("data")
    from pointseg.tasks import get_task

    task = get_task(dataset)
    for key, (flags, kw) in _DATA_FLAGS.items():
        if key in task.settings:
            help_text = getattr(task, "setting_help", {}).get(key) or kw.get("help")
            d.add_argument(*flags, **{**kw, "help": help_text})
    d.add_argument(
        "--max-train-samples",
        type=int,
        help="use a seeded subset of this many training samples (smoke runs)",
    )
    d.add_argument(
        "--max-val-samples", type=int, help="use a seeded subset of this many validation samples"
    )
    o = p.add_argument_group("optimisation")
    o.add_argument("--epochs", type=int)
    o.add_argument("--batch-size", type=int, help="global batch (split evenly over DDP processes)")
    o.add_argument("--optimizer", choices=["adam", "adamw", "sgd"])
    o.add_argument("--lr", type=float)
    o.add_argument("--momentum", type=float)
    o.add_argument("--weight-decay", type=float)
    o.add_argument(
        "--weight-decay-scope",
        choices=["all", "first"],
        help="all: decay every parameter; first: only the layer that reads the input (GCN)",
    )
    o.add_argument(
        "--scheduler",
        choices=["step", "cosine", "warmup_cosine", "none"],
        help="step/cosine: per epoch; warmup_cosine: per optimiser step, linear warm-up then cosine",
    )
    o.add_argument("--step-size", type=int, help="StepLR period in epochs")
    o.add_argument("--gamma", type=float, help="StepLR factor")
    o.add_argument("--min-lr", type=float, help="cosine schedule's final learning rate")
    o.add_argument("--warmup-steps", type=int, help="warmup_cosine: steps of linear warm-up")
    o.add_argument("--label-smoothing", type=float)
    o.add_argument(
        "--class-weights",
        choices=["none", "inverse_sqrt"],
        help="S3DIS loss weights from the training label frequencies",
    )
    o.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None)
    o.add_argument("--grad-clip", type=float)
    r = p.add_argument_group("runtime")
    r.add_argument("--seed", type=int)
    r.add_argument(
        "--quick",
        action="store_true",
        help="graph tasks: the recipe's quick variant (small model, few epochs; ~1 min on a CPU "
        "core; for smoke tests, not numbers); your flags and --set still win (pointseg.recipes)",
    )
    r.add_argument(
        "--seeds",
        metavar="N|LIST",
        help="train one run per seed under one parent folder and write summary.json (mean ± std): "
        "N = seeds --seed … --seed+N-1, or a list 0,1,2; rerun to resume (pointseg.engine.seeds)",
    )
    r.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.use_deterministic_algorithms + fixed thread count (--threads, default 1)",
    )
    r.add_argument("--threads", type=int)
    add_knn_argument(r)  # stored as model.knn: eval / predict of the checkpoint use the same path
    r.add_argument(
        "--device",
        help="auto (default: cuda:<local rank> if available, else cpu), cpu, cuda, cuda:1 …",
    )
    r.add_argument("--workers", type=int, help="DataLoader worker processes (default 0)")
    r.add_argument(
        "--save-every", type=int, metavar="STEPS", help="also write last.pt every N optimiser steps"
    )
    r.add_argument("--max-steps", type=int, help="stop resumably after N optimiser steps in total")
    r.add_argument("--eval-every", type=int, metavar="EPOCHS")
    r.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=None)
    r.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model (S3DIS segmentation or ModelNet40 classification)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="dataset", metavar="<dataset>", required=True)
    from pointseg.tasks import get_task, task_names

    for name in task_names():  # every registered task, one module each in pointseg/tasks/
        q = sub.add_parser(name, help=get_task(name).description)
        _add_arguments(q, name)
        q.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    """The resolved TrainConfig for parsed `args` (on --resume, the run's config.yaml is the base)."""
    from pointseg.engine.train import load_run_config, resolve_config

    if getattr(args, "quick", False):
        from pointseg.recipes import apply_quick

        apply_quick(args, _FLAG_KEYS)
    flags = {key: getattr(args, dest, None) for dest, key in _FLAG_KEYS.items()}
    if getattr(args, "knn", None):
        args.set = [*(args.set or []), f"model.knn={args.knn}"]
    cfg = resolve_config(args.dataset, config_file=args.config, flags=flags, sets=args.set)
    if args.resume:
        base = load_run_config(cfg.run_dir)
        cfg = resolve_config(
            args.dataset, config_file=args.config, flags=flags, sets=args.set, base=base
        )
    return cfg


def run(args: argparse.Namespace) -> int:
    from pointseg.engine.train import TrainingInterrupted, train

    if getattr(args, "seeds", None) is not None:
        from pointseg.engine.seeds import run_seeds_cli

        return run_seeds_cli(args, config_from_args)
    cfg = config_from_args(args)
    try:
        run_dir = train(cfg, resume=args.resume, overwrite=args.overwrite)
    except TrainingInterrupted as exc:
        print(f"interrupted: {exc}", file=sys.stderr)
        return exc.exit_code
    print(run_dir)
    return 0
