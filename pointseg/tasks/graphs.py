"""General-graph tasks (`pointseg.tasks.base.Task` for PyG graphs): node and graph-level tasks.

A graph task says how to read its data from a local root (`load`), which model fits it
(`model_config`: a graph preset sized to the data), how to batch a split (`batches`), its loss
(`loss`) and its metric (`score`, higher is better, named `metric`). `GraphTask` turns these into
the `Task` interface the one training loop (`pointseg.engine.trainer`) and `pointseg eval` call.

Two base classes cover the general-graph tasks:

- `NodeTask`: one (or a few) large graphs with per-node labels and split masks, trained full-batch
  (e.g. Planetoid citation graphs, ogbn-arxiv).
- `GraphLevelTask`: many small graphs with per-graph labels, trained in shuffled mini-batches
  (PyG `Batch`; e.g. OGB molecules, PPI's 24 graphs with per-node labels).

A new graph task is one file in `pointseg/tasks/` that subclasses one of them and calls
`register_task(MyTask())`; `pointseg/tasks/__init__.py` lists the task modules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from pointseg.errors import ConfigError
from pointseg.tasks.base import COMMON_EVAL_OPTIONS, StepResult, Task

SPLITS = ("train", "val", "test")


@dataclass
class GraphData:
    """A task's data: `splits` maps "train" / "val" / "test" to what `Task.batches` reads.

    NodeTask: every split is the same `torch_geometric.data.Data` (``x``, ``edge_index``, ``y``) and
    `masks[split]` selects its nodes. GraphLevelTask: `splits[split]` is a list of `Data` graphs.
    """

    splits: dict[str, Any]
    in_channels: int
    num_classes: int
    classes: list[str]
    info: dict  # recorded in checkpoint meta["data"]
    masks: dict[str, Tensor] = field(default_factory=dict)

    def num_samples(self, split: str) -> int:
        if split in self.masks:
            return int(self.masks[split].sum())
        return len(self.splits.get(split) or [])


@dataclass
class Batch:
    """One step's input: the graph (a PyG Data/Batch) and the rows of the output that count."""

    graph: Any
    mask: Tensor | None = None  # node tasks: nodes of the split; None = every output row


GRAPH_LOG_COLUMNS = (
    "epoch",
    "step",
    "lr",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_metric",
    "metric",
    "time_s",
    "throughput",
    "throughput_unit",
)


class GraphTask(Task):
    """Base class of the graph tasks; subclasses set the class attributes and implement `load`."""

    name: str = ""
    level: str = "node"  # "node" | "graph": what the model predicts
    metric: str = "accuracy"  # name of `score`'s value (higher is better)
    multilabel: bool = False  # BCE over independent labels instead of softmax cross-entropy
    description: str = ""
    data_help: str = ""  # what --data must contain
    defaults: dict[str, Any] = {}  # TrainConfig values that differ from the S3DIS defaults
    settings = frozenset({"data"})
    best_metric = "val_metric"
    log_columns = GRAPH_LOG_COLUMNS
    distributed = False  # one process (no torchrun)
    # Inference per split: (views, parts) = average the logits of `views` random node partitions
    # into `parts` parts each (node tasks; DeeperGCN's multi-view inference). (1, 1): full graph.
    inference: dict[str, tuple[int, int]] = {}

    # ---------------------------------------------------------------------------- data
    def load(self, root: Path) -> GraphData:  # pragma: no cover - abstract
        raise NotImplementedError

    def resolve_root(self, data: str | None) -> Path:
        if not data:
            raise ConfigError(
                f"{self.name}: give the dataset root with --data DIR ({self.data_help})"
            )
        return Path(data).expanduser()

    def batches(
        self, data: GraphData, split: str, *, batch_size: int, generator: torch.Generator | None
    ) -> list[Batch]:  # pragma: no cover - abstract
        raise NotImplementedError

    # ---------------------------------------------------------------------------- model
    def model_config(self, cfg, data: GraphData):
        """The preset `cfg.model` with `cfg.model_args`, sized to the data."""
        return self.sized_model_config(cfg.model, dict(cfg.model_args), data)

    def sized_model_config(self, name: str, overrides: dict, data: GraphData):
        """The preset `name` with `overrides`, sized to the data (in_channels / num_classes)."""
        from pointseg.models.registry import get_graph_config

        try:
            cfg = get_graph_config(name, **overrides)
        except TypeError as exc:
            raise ConfigError(f"bad model override in {overrides}: {exc}") from None
        sized = {}
        if "in_channels" not in overrides and cfg.node_encoder in ("linear", "none"):
            sized["in_channels"] = data.in_channels
        if "num_classes" not in overrides:
            sized["num_classes"] = data.num_classes
        if cfg.task != self.level:
            sized["task"] = self.level
        cfg = cfg.replace(**sized) if sized else cfg
        if cfg.node_encoder in ("linear", "none") and cfg.in_channels != data.in_channels:
            raise ConfigError(
                f"model {name!r} expects {cfg.in_channels} node features but the {self.name} data "
                f"has {data.in_channels}; set --set model.in_channels={data.in_channels}"
            )
        if cfg.num_classes != data.num_classes:
            raise ConfigError(
                f"model {name!r} predicts {cfg.num_classes} outputs but {self.name} has "
                f"{data.num_classes}; set --set model.num_classes={data.num_classes}"
            )
        return cfg

    @staticmethod
    def forward(model: torch.nn.Module, graph: Any) -> Tensor:
        return model(
            graph.x,
            graph.edge_index,
            getattr(graph, "edge_attr", None),
            getattr(graph, "batch", None),
        )

    def predict(
        self,
        model: torch.nn.Module,
        data: GraphData,
        split: str,
        *,
        batch_size: int,
        device: torch.device | str = "cpu",
        views: int | None = None,
        parts: int | None = None,
        seed: int = 0,
    ) -> tuple[Tensor, Tensor]:
        """Logits and targets of every row of `split` (model in eval mode, no gradients, no global
        RNG drawn): the batches of `batches`, one forward each. Node tasks can instead average
        several random node partitions (`NodeTask.predict`); ``views`` / ``parts`` default to
        ``inference[split]``."""
        v, p = self.inference_setting(split, views, parts)
        if (v, p) != (1, 1):
            raise ConfigError(
                f"{self.name}: multi-view / partitioned inference (views={v}, parts={p}) is for "
                "node tasks only"
            )
        return self._predict_batches(model, data, split, batch_size=batch_size, device=device)

    def _predict_batches(self, model, data, split, *, batch_size, device):
        logits, ys = [], []
        with torch.no_grad():
            for batch in self.batches(data, split, batch_size=batch_size, generator=None):
                lo = self.forward(model, batch.graph.to(device))
                if batch.mask is not None:
                    lo = lo[batch.mask.to(device)]
                logits.append(lo.float().cpu())
                ys.append(self.target(batch).cpu())
        return torch.cat(logits), torch.cat(ys)

    def inference_setting(
        self, split: str, views: int | None = None, parts: int | None = None
    ) -> tuple[int, int]:
        """(views, parts) for `split`: the given values, else `inference[split]`, else (1, 1)."""
        dv, dp = self.inference.get(split, (1, 1))
        v, p = int(dv if views is None else views), int(dp if parts is None else parts)
        if v < 1 or p < 1:
            raise ConfigError(f"{self.name}: views and parts must be >= 1; got {v}, {p}")
        return v, p

    # ---------------------------------------------------------------------------- objective
    def target(self, batch: Batch) -> Tensor:
        y = batch.graph.y
        return y if batch.mask is None else y[batch.mask]

    def loss(self, logits: Tensor, y: Tensor) -> Tensor:
        """Cross-entropy (single label) or BCE-with-logits over labelled entries (multi-label;
        NaN targets, as in OGB's multi-task molecule sets, are ignored)."""
        if self.multilabel:
            y = y.to(logits.dtype).reshape(logits.shape)
            known = ~torch.isnan(y)
            return F.binary_cross_entropy_with_logits(logits[known], y[known])
        return F.cross_entropy(logits, y.reshape(-1).long())

    def correct(self, logits: Tensor, y: Tensor) -> tuple[float, float]:
        """(correct, count) for the training accuracy column of log.csv."""
        if self.multilabel:
            y = y.reshape(logits.shape)
            known = ~torch.isnan(y.to(logits.dtype))
            pred = (logits > 0).to(y.dtype)
            return float((pred == y)[known].sum()), float(known.sum())
        return float((logits.argmax(-1) == y.reshape(-1)).sum()), float(y.numel())

    def score(self, logits: Tensor, y: Tensor) -> float:
        """The task metric on all rows of a split (higher is better)."""
        correct, count = self.correct(logits, y)
        return correct / max(count, 1.0)

    # ---------------------------------------------------------------------------- Task interface
    @property
    def sample_noun(self) -> str:  # type: ignore[override]
        return "nodes" if self.level == "node" else "graphs"

    @property
    def best_label(self) -> str:
        return f"val {self.metric}"

    @property
    def setting_help(self) -> dict[str, str]:  # type: ignore[override]
        return {"data": self.data_help}

    @property
    def eval_options(self) -> frozenset[str]:  # type: ignore[override]
        # Full-graph node tasks have no batches at evaluation; multi-view inference is theirs.
        if self.level == "node":
            return COMMON_EVAL_OPTIONS | {"data", "views", "parts"}
        return COMMON_EVAL_OPTIONS | {"data", "batch_size"}

    def build_data(self, cfg, info) -> GraphData:
        return self.load(self.resolve_root(cfg.data))

    def num_samples(self, data: GraphData, split: str) -> int:
        return data.num_samples(split)

    def steps_per_epoch(self, cfg, data: GraphData, info) -> int:
        if self.level == "node":
            return 1
        return max(math.ceil(data.num_samples("train") / cfg.batch_size), 1)

    def train_batches(self, cfg, data: GraphData, info, epoch: int, start: int):
        batches = self.epoch_batches(cfg, data, epoch)
        return len(batches), iter(batches[start:])

    def epoch_batches(self, cfg, data: GraphData, epoch: int) -> list[Batch]:
        """The training batches of `epoch`, in an order drawn from a generator seeded by
        (seed, epoch): a resumed run sees the same batches."""
        gen = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
        return self.batches(data, "train", batch_size=cfg.batch_size, generator=gen)

    def training_step(self, model, batch: Batch, cfg, data, info) -> StepResult:
        graph = batch.graph.to(info.device)
        mask = batch.mask.to(info.device) if batch.mask is not None else None
        logits = self.forward(model, graph)
        if mask is not None:
            logits = logits[mask]
        y = self.target(Batch(graph, mask))
        loss = self.loss(logits, y)
        with torch.no_grad():
            correct, count = self.correct(logits, y)
        return StepResult(loss, correct, count, samples=float(y.shape[0]))

    def validate(self, model, cfg, data: GraphData, info) -> dict[str, float]:
        """Loss and metric of the val split (`predict`: full graph, batches, or the task's
        partitioned / multi-view inference; no global RNG drawn)."""
        if data.num_samples("val") == 0:
            return {"val_loss": float("nan"), "val_metric": float("nan")}
        lo, y = self.predict(
            model,
            data,
            "val",
            batch_size=cfg.batch_size,
            device=info.device,
            seed=cfg.seed,  # partitioned inference: the same partitions every epoch
        )
        return {"val_loss": float(self.loss(lo, y)), "val_metric": float(self.score(lo, y))}

    def log_constants(self) -> dict[str, Any]:
        return {"metric": self.metric}

    def checkpoint_meta(self, cfg, data: GraphData) -> dict[str, Any]:
        return {
            "task": f"{self.level}-level {self.metric}",
            "graph_task": self.name,
            "dataset": cfg.dataset,
            "metric": self.metric,
            "classes": data.classes,
            "data": data.info,
        }

    def evaluate(self, path: Path, ckpt: dict, **options: Any) -> dict:
        from pointseg.engine.graph_eval import evaluate_graph_checkpoint

        return evaluate_graph_checkpoint(path, ckpt=ckpt, task=self, **options)


class NodeTask(GraphTask):
    """Node classification on one graph, full batch: every split is one step over the whole graph.

    Inference (`predict`) runs the full graph, or, with ``views`` / ``parts`` (DeeperGCN's
    multi-view inference on ogbn-proteins), averages the logits of ``views`` random partitions of
    the nodes into ``parts`` parts, each part's induced subgraph run on its own (edges between parts
    are dropped; averaging views gives every node several neighbourhoods). The partitions come from
    a generator seeded with ``seed``: the result is deterministic for a seed.
    """

    level = "node"

    def batches(self, data, split, *, batch_size, generator):
        return [Batch(data.splits[split], data.masks[split])]

    def predict(
        self, model, data, split, *, batch_size, device="cpu", views=None, parts=None, seed=0
    ):
        v, p = self.inference_setting(split, views, parts)
        if (v, p) == (1, 1):
            return self._predict_batches(model, data, split, batch_size=batch_size, device=device)
        graph, mask = data.splits[split], data.masks[split]
        with torch.no_grad():
            logits = multiview_logits(
                lambda g: self.forward(model, g.to(device)).float().cpu(), graph, v, p, seed
            )
        return logits[mask], self.target(Batch(graph, mask)).cpu()


def random_partitions(num_nodes: int, parts: int, views: int, seed: int) -> list[list[Tensor]]:
    """`views` random partitions of range(num_nodes) into `parts` parts (sorted node ids), drawn in
    order from one generator seeded with `seed`: view v is the v-th `torch.randperm`, chunked."""
    gen = torch.Generator().manual_seed(int(seed))
    return [
        [c.sort().values for c in torch.randperm(num_nodes, generator=gen).chunk(parts)]
        for _ in range(views)
    ]


def induced_subgraph(graph: Any, nodes: Tensor) -> Any:
    """The subgraph of a PyG `Data` on `nodes` (sorted ids): x, y, edges inside, their edge_attr."""
    from torch_geometric.data import Data
    from torch_geometric.utils import subgraph

    edge_attr = getattr(graph, "edge_attr", None)
    ei, ea = subgraph(
        nodes, graph.edge_index, edge_attr, relabel_nodes=True, num_nodes=graph.num_nodes
    )
    sub = Data(x=graph.x[nodes], edge_index=ei, y=graph.y[nodes])
    if ea is not None:
        sub.edge_attr = ea
    return sub


def multiview_logits(forward, graph: Any, views: int, parts: int, seed: int) -> Tensor:
    """Mean over `views` random node partitions (`random_partitions`) of the logits of every node,
    each part's induced subgraph run through ``forward(subgraph) -> (n_part, C)``."""
    total: Tensor | None = None
    for partition in random_partitions(graph.num_nodes, parts, views, seed):
        out: Tensor | None = None
        for nodes in partition:
            lo = forward(induced_subgraph(graph, nodes))  # (n_part, C)
            if out is None:
                out = lo.new_empty((graph.num_nodes, *lo.shape[1:]))
            out[nodes] = lo
        total = out if total is None else total + out
    return total / views


class GraphLevelTask(GraphTask):
    """Many small graphs in shuffled mini-batches (`batch_size` graphs per step)."""

    level = "graph"

    def steps_per_epoch(self, cfg, data: GraphData, info) -> int:
        n, b = data.num_samples("train"), cfg.batch_size
        return max(n // b + (n % b > 1), 1)  # a last batch of one graph is left out (below)

    def epoch_batches(self, cfg, data: GraphData, epoch: int) -> list[Batch]:
        """`GraphTask.epoch_batches` without a last batch of a single graph: OGB's and
        DeeperGCN's training loops skip such batches (BatchNorm over the nodes of a one-atom
        molecule fails, and one graph is no batch); e.g. molfreesolv's 513 training graphs in
        batches of 32 leave one."""
        batches = super().epoch_batches(cfg, data, epoch)
        return batches[:-1] if len(batches) > 1 and batches[-1].graph.num_graphs == 1 else batches

    def batches(self, data, split, *, batch_size, generator):
        from torch_geometric.data import Batch as PyGBatch

        graphs = data.splits[split]
        order = (
            torch.randperm(len(graphs), generator=generator).tolist()
            if generator is not None
            else list(range(len(graphs)))
        )
        return [
            Batch(PyGBatch.from_data_list([graphs[i] for i in order[s : s + batch_size]]))
            for s in range(0, len(order), batch_size)
        ]
