"""Per-dataset training recipes for the general-graph tasks, and their `--quick` variants.

A recipe is the task's default TrainConfig values (model preset, optimiser, epochs …) plus the
model preset it names. Each setting below carries its reason; docs/graphs.md records what was
measured with them. Every choice was made on the **validation** split only (the test split was
scored once per recipe, after the choice; docs/graphs.md lists the candidates and their
validation accuracies).

`pointseg train <task> --quick` swaps in the task's `QUICK` settings (small model, few epochs:
about a minute on one CPU core) underneath the user's own flags and `--set`s: for smoke tests
and the test suite, not for numbers.
"""

from __future__ import annotations

import argparse
from typing import Any

from pointseg.errors import ConfigError

# ------------------------------------------------------------------------------------ planetoid
# Shared by the three citation graphs (public split: 20 labels per class, 500 val, 1000 test).
_PLANETOID_TRAIN: dict[str, Any] = {
    "batch_size": 1,  # full batch: the whole graph is one step
    "optimizer": "adam",  # GCN / GAT / DeeperGCN all use Adam
    "scheduler": "none",  # GCN/GAT use a constant learning rate
}

# Kipf & Welling's GCN recipe (ICLR 2017, and PyG's examples/gcn.py): the 2-layer GCN
# `gcn2_planetoid` (16 hidden, dropout 0.5 on the input and the hidden layer), Adam lr 0.01,
# L2 5e-4 on the first layer's weights only, 200 epochs; best.pt = the epoch of best validation
# accuracy. It validated above every res+ / GENConv candidate on Cora (10 seeds: 0.8026 vs 0.7940,
# docs/graphs.md), with a tenth of their parameters: 140 labels overfit anything larger.
_GCN: dict[str, Any] = {
    **_PLANETOID_TRAIN,
    "model": "gcn2_planetoid",
    "epochs": 200,  # GCN's budget
    "lr": 0.01,  # GCN's learning rate
    "weight_decay": 5e-4,  # GCN's L2 factor ...
    # ... on the first layer only, as published: decaying every parameter validated the same on
    # Cora (10 seeds: 0.8030 vs 0.8026, 2 of 5,000 validation predictions), so GCN's setting stays
    "weight_decay_scope": "first",
}

PLANETOID: dict[str, dict[str, Any]] = {
    "cora": dict(_GCN),
    "citeseer": dict(_GCN),  # validation 0.7238 vs 0.6864 for the res+ GCNConv recipe (10 seeds)
    "pubmed": dict(_GCN),  # NOT measured here (no local copy): GCN's published PubMed settings
}

# ------------------------------------------------------------------------------- OGB molecules
# DeeperGCN's molecule recipe (deep_gcns_torch examples/ogb/ogbg_mol: `main.py --conv_encode_edge
# --num_layers 7 --block res+ --gcn_aggr softmax --t 1.0 --learn_t`, the other flags at their
# defaults): the `resgen7_mol` preset (7 res+ GENConv layers, 256 ch, softmax with learnable β,
# BatchNorm, one BondEncoder per layer, dropout 0.5, mean pooling) trained with Adam lr 0.01, batch
# 32 graphs, 300 epochs, no weight decay, the model of best validation score kept.
OGBG_MOL: dict[str, Any] = {
    "model": "resgen7_mol",
    "epochs": 300,
    "batch_size": 32,
    "optimizer": "adam",
    "lr": 0.01,
    "weight_decay": 0.0,
    "scheduler": "none",
}

# ---------------------------------------------------------------------------------- --quick
# "key=value" settings (the `--set` syntax), applied below the user's flags and --set.
QUICK: dict[str, dict[str, Any]] = {
    "planetoid": {"epochs": 30},
    "ogbg": {
        "model": "resgen_mol",  # 4 res+ GENConv layers, 64 ch (the DeeperGCN block, smaller)
        "epochs": 3,
        "lr": 0.01,
    },
}


def quick_settings(task: str) -> dict[str, Any]:
    """The `--quick` settings of a graph task (ConfigError for tasks without one)."""
    family = "planetoid" if task in PLANETOID else "ogbg" if task.startswith("ogbg-mol") else None
    if family is None:
        raise ConfigError(
            f"{task}: no --quick variant (tasks with one: cora, citeseer, pubmed, ogbg-mol*)"
        )
    return dict(QUICK[family])


def apply_quick(args: argparse.Namespace, flag_keys: dict[str, str]) -> None:
    """Put the task's quick settings into ``args.set`` ahead of the user's own `--set`s, leaving
    out every key the user gave as a flag (flags and `--set` keep the last word)."""
    given = {key for dest, key in flag_keys.items() if getattr(args, dest, None) is not None}
    user_sets = list(args.set or [])
    given |= {s.split("=", 1)[0].strip() for s in user_sets}
    quick = [f"{k}={v}" for k, v in quick_settings(args.dataset).items() if k not in given]
    args.set = quick + user_sets
