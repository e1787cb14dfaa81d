"""`ModelConfig`: the one typed argument of `DeepGCN` (stored in every checkpoint).

Field defaults are the published S3DIS ResGCN-28 of DeepGCNs (Li et al., ICCV'19) as trained by
the original PyTorch code (deep_gcns_torch `examples/sem_seg_dense`): 9 input channels,
13 classes, 64 channels, 28 graph layers (head EdgeConv + 27 residual blocks), k = 16, dilation
d = i in block i, stochastic dilation ε = 0.2, Conv → ReLU → BN, biases on, fusion 1792 → 1024,
prediction 2816 → 512 → 256 → dropout 0.3 → 13.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from pointseg.errors import ConfigError

TASKS = ("segmentation", "classification")
CONVS = ("edge", "mr", "sage", "gin")
BLOCKS = ("res", "plain", "dense", "res+", "rev", "deq")
DEQ_SOLVERS = ("anderson", "fixed_point")
FUSION_LAYERS = ("auto", "all", "ends", "last")
KNN_PATHS = ("auto", "exact32", "bf16")  # = pointseg.graph.knn.KNN_MODES
ORDERS = ("conv_act_norm", "conv_norm_act")
NORMS = ("batch", "layer", "instance", "none")
ACTS = ("relu", "leaky_relu", "elu", "gelu", "silu", "tanh", "sigmoid", "none")
POOLINGS = ("max+mean", "max", "mean")
DENSE_FUSIONS = ("new", "all")

__all__ = [
    "ModelConfig",
    "TASKS",
    "CONVS",
    "BLOCKS",
    "ORDERS",
    "NORMS",
    "ACTS",
    "POOLINGS",
    "DENSE_FUSIONS",
    "DEQ_SOLVERS",
]


@dataclass
class ModelConfig:
    """Architecture of a DeepGCN point-cloud model (see DESIGN §3).

    Attributes:
        task: "segmentation" (logits per point, (B, N, classes)) or "classification" ((B, classes)).
        in_channels: input channels per point; the head's kNN graph uses the first 3 (xyz).
        num_classes: output classes.
        channels: width of every graph layer (DenseGCN: the growth rate).
        num_blocks: graph layers including the head conv (28 = head + 27 blocks).
        k: neighbours per point.
        conv: graph convolution, one of `CONVS` ("mr" = MRConv of the paper).
        block: backbone block, one of `BLOCKS` ("res+" = DeeperGCN pre-activation block).
        order: "conv_act_norm" (original PyTorch code) or "conv_norm_act" (original TF code).
        norm: "batch" | "layer" | "instance" | "none".
        act: activation of the graph layers.
        bias: bias of every Linear layer unless overridden below.
        dilation: block i (1-based) uses dilation d = i when True, d = 1 otherwise.
        stochastic: stochastic dilation in training (probability `epsilon` per layer and forward).
        epsilon: stochastic-dilation probability.
        dynamic: rebuild the kNN graph on every block's input features (False: every block
            reuses the head's xyz graph).
        fusion_channels: width of the fused global feature (1792 → 1024).
        head_channels: hidden widths of the prediction MLP.
        dropout: dropout probability of the prediction MLP (segmentation: before the last
            layer; classification: after each hidden layer, as in the original ModelNet code).
        pooling: global pooling of the fused features for classification ("max+mean" concatenates
            both, doubling the width).
        head_act: activation of the fusion layer and the prediction MLP (None: `act`).
        stem_bias: bias of the head graph conv (None: `bias`).
        fusion_bias: bias of the fusion layer (None: `bias`).
        dense_fusion: DenseGCN only. "new": the fusion takes every layer's new 64 channels once
            (= the last block's output, 64·L); "all": it concatenates every block's full output
            (64·L(L+1)/2 = 25,984 for L = 28), as the original ModelNet code does.

    Very deep models (docs/reversible.md). ``block="rev"``: the L − 1 blocks are grouped
    reversible residual blocks (RevGNN) run as one `pointseg.nn.RevGCN` (activation memory
    independent of depth); the fusion takes [h_0, h_{L−1}] (2·channels), since keeping every
    layer's output would bring back the O(L) memory. ``block="deq"``: one DEQ layer after the
    head conv (num_blocks = 2), fused the same way.
        groups: rev: channel groups G >= 2 (channels % groups == 0); every group has its own conv.
        weight_tied: rev: one block's weights shared by every layer (parameters independent of L).
        block_dropout: rev: shared dropout mask inside the blocks (one per forward, all layers).
        keep_graphs: rev (ignored otherwise): keep every dynamic kNN graph (int16) instead of
            rebuilding it in backward from the reconstructed input. True (default): gradients as
            the ordinary computation's; False: activation memory independent of depth, but float32
            rebuilds flip neighbours and corrupt the reconstruction (docs/reversible.md).
        checkpoint: res / plain / dense / res+: gradient checkpointing per block (recompute in
            backward, torch.utils.checkpoint, use_reentrant=False).
        dilation_cycle: > 0: block i uses d = (i − 1) mod cycle + 1 (deep models with few points).
        deq_solver, deq_tol, deq_max_iter: deq: solver, relative residual target, iteration cap.
        fusion_layers: which layer outputs the fusion takes: "all" (the paper's concatenation),
            "ends" ([h_0, h_{L−1}]), "last" ([h_{L−1}] alone: every layer lies on the path to
            the head, as in a network without skip connections to the fusion), "auto" ("ends" for
            rev / deq, "all" otherwise).
        knn: the exact kNN path of every graph (training forward, eval and predict alike):
            "auto" (the process-wide choice: the path measured faster, today exact32),
            "exact32" (fp32 distance products) or "bf16" (bf16 candidates + exact fp32 re-rank
            wherever they can run). A `--knn` flag overrides it. See docs/knn.md.
    """

    task: str = "segmentation"
    in_channels: int = 9
    num_classes: int = 13
    channels: int = 64
    num_blocks: int = 28
    k: int = 16
    conv: str = "edge"
    block: str = "res"
    order: str = "conv_act_norm"
    norm: str = "batch"
    act: str = "relu"
    bias: bool = True
    dilation: bool = True
    stochastic: bool = True
    epsilon: float = 0.2
    dynamic: bool = True
    fusion_channels: int = 1024
    head_channels: tuple[int, ...] = field(default=(512, 256))
    dropout: float = 0.3
    pooling: str = "max+mean"
    head_act: str | None = None
    stem_bias: bool | None = None
    fusion_bias: bool | None = None
    dense_fusion: str = "new"
    groups: int = 2
    weight_tied: bool = False
    block_dropout: float = 0.0
    keep_graphs: bool = True
    checkpoint: bool = False
    dilation_cycle: int = 0
    deq_solver: str = "anderson"
    deq_tol: float = 1e-3
    deq_max_iter: int = 30
    fusion_layers: str = "auto"
    knn: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.head_channels, list):
            self.head_channels = tuple(self.head_channels)
        self.validate()

    # ------------------------------------------------------------------ derived quantities
    def block_dilation(self, i: int) -> int:
        """Dilation of block i (1-based; the head conv, i = 0, always uses d = 1)."""
        if i < 1 or not self.dilation or self.block in ("plain", "deq"):
            return 1
        if self.dilation_cycle:
            return (i - 1) % self.dilation_cycle + 1
        return i

    def max_dilation(self) -> int:
        if self.num_blocks <= 1:
            return 1
        if self.dilation_cycle:
            return max(
                self.block_dilation(i)
                for i in range(1, min(self.num_blocks, self.dilation_cycle + 1))
            )
        return self.block_dilation(self.num_blocks - 1)

    @property
    def feature_channels(self) -> int:
        """Width of the concatenated per-layer features fed to the fusion (1792 for ResGCN-28)."""
        if self.block == "dense" and self.dense_fusion == "all":
            return self.channels * self.num_blocks * (self.num_blocks + 1) // 2
        if self.fusion_layers == "last":
            return self.channels  # [h_{L−1}]
        if self.fuse_ends:
            return 2 * self.channels  # [h_0, h_{L−1}]
        return self.channels * self.num_blocks

    @property
    def fuse_ends(self) -> bool:
        """The fusion takes [h_0, h_{L−1}] only (see `fusion_layers`)."""
        return self.fusion_layers != "last" and (
            self.block in ("rev", "deq") or self.fusion_layers == "ends"
        )

    @property
    def min_points(self) -> int:
        """Fewest points per cloud the model accepts: the deepest block needs k·d neighbours."""
        return self.k * self.max_dilation()

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (lists for tuples) that `from_dict` turns back into an equal config."""
        d = dataclasses.asdict(self)
        d["head_channels"] = list(self.head_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Build from a dict; unknown keys raise ConfigError naming them and the valid keys."""
        if not isinstance(d, dict):
            raise ConfigError(f"model config must be a dict, got {type(d).__name__}")
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(valid))
        if unknown:
            raise ConfigError(
                f"unknown model config key(s) {unknown}; valid keys: {', '.join(valid)}"
            )
        return cls(**d)

    def replace(self, **overrides: Any) -> ModelConfig:
        """Copy with some fields changed (validated; unknown keys raise ConfigError)."""
        merged = self.to_dict()
        merged.update(overrides)
        return ModelConfig.from_dict(merged)

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise ConfigError naming the first bad field, its value and what is allowed."""
        choices = {
            "task": TASKS,
            "conv": CONVS,
            "block": BLOCKS,
            "order": ORDERS,
            "norm": NORMS,
            "act": ACTS,
            "pooling": POOLINGS,
            "dense_fusion": DENSE_FUSIONS,
            "deq_solver": DEQ_SOLVERS,
            "fusion_layers": FUSION_LAYERS,
            "knn": KNN_PATHS,
        }
        if self.norm is None:
            self.norm = "none"
        for name, valid in choices.items():
            value = getattr(self, name)
            if value not in valid:
                raise ConfigError(
                    f"model config: {name}={value!r} is not valid; choose one of {', '.join(valid)}"
                )
        if self.head_act is not None and self.head_act not in ACTS:
            raise ConfigError(
                f"model config: head_act={self.head_act!r} is not valid; choose one of "
                f"{', '.join(ACTS)} (or None for act)"
            )
        for name in (
            "in_channels",
            "num_classes",
            "channels",
            "num_blocks",
            "k",
            "fusion_channels",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"model config: {name} must be an int >= 1, got {value!r}")
        if self.task == "segmentation" and self.in_channels < 3:
            raise ConfigError(
                f"model config: in_channels must be >= 3 (the head graph uses xyz), "
                f"got {self.in_channels}"
            )
        for name in ("bias", "dilation", "stochastic", "dynamic", "weight_tied", "keep_graphs",
                     "checkpoint"):  # fmt: skip
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(
                    f"model config: {name} must be true or false, got {getattr(self, name)!r}"
                )
        for name in ("stem_bias", "fusion_bias"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise ConfigError(
                    f"model config: {name} must be true, false or null, got {value!r}"
                )
        self._validate_deep()
        for name, hi in (("epsilon", 1.0), ("dropout", 1.0), ("block_dropout", 1.0)):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not 0 <= value <= hi
            ):
                raise ConfigError(f"model config: {name} must be a number in [0, 1], got {value!r}")
            if name in ("dropout", "block_dropout") and value >= 1:
                raise ConfigError(f"model config: {name} must be < 1, got {value!r}")
        hc = self.head_channels
        if not isinstance(hc, tuple) or not all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in hc
        ):
            raise ConfigError(
                f"model config: head_channels must be a list of ints >= 1 (e.g. [512, 256]), "
                f"got {hc!r}"
            )

    def _validate_deep(self) -> None:
        """Fields of the very deep variants (rev / deq / checkpoint)."""
        for name, low in (("groups", 2), ("dilation_cycle", 0), ("deq_max_iter", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"model config: {name} must be an int >= {low}, got {value!r}")
        tol = self.deq_tol
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol > 0:
            raise ConfigError(f"model config: deq_tol must be a number > 0, got {tol!r}")
        if self.block == "rev" and self.channels % self.groups:
            raise ConfigError(
                f"model config: block=rev splits channels={self.channels} into groups="
                f"{self.groups} equal groups; choose channels divisible by groups"
            )
        if self.block == "deq" and self.num_blocks != 2:
            raise ConfigError(
                f"model config: block=deq has one equilibrium layer after the head conv, so "
                f"num_blocks must be 2; got {self.num_blocks}"
            )
        if self.block in ("rev", "deq") and self.fusion_layers == "all":
            raise ConfigError(
                f"model config: block={self.block} fuses [h_0, h_L] only (it keeps no other "
                "layer output); use fusion_layers=auto, ends or last"
            )
        if self.block == "dense" and self.fusion_layers in ("ends", "last"):
            raise ConfigError(
                f"model config: fusion_layers={self.fusion_layers} is not defined for block=dense"
            )
        if self.checkpoint and self.block in ("rev", "deq"):
            raise ConfigError(
                f"model config: checkpoint applies to res/plain/dense/res+ blocks; block="
                f"{self.block} already recomputes in backward"
            )
        if self.block != "rev" and self.weight_tied:
            raise ConfigError(f"model config: weight_tied needs block=rev, got block={self.block}")
