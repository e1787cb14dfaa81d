"""Named model presets (timm-style): `create_model("resgcn28")`, `get_config`, `list_models()`.

A preset is a function registered with `@register_model` that returns a `ModelConfig`; the model
itself is always `DeepGCN(config)`, so a checkpoint (which stores the config) never needs the
preset name to be rebuilt.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from pointseg.errors import ConfigError
from pointseg.models.config import ModelConfig

__all__ = ["register_model", "create_model", "get_config", "list_models", "MODEL_REGISTRY"]

MODEL_REGISTRY: dict[str, Callable[[], ModelConfig]] = {}


def register_model(fn: Callable[[], ModelConfig]) -> Callable[[], ModelConfig]:
    """Register a preset under its function name (the docstring's first line describes it)."""
    if fn.__name__ in MODEL_REGISTRY:
        raise ValueError(f"model preset {fn.__name__!r} is already registered")
    MODEL_REGISTRY[fn.__name__] = fn
    return fn


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted preset names, optionally filtered by a shell-style pattern (e.g. "resgcn*")."""
    names = sorted(MODEL_REGISTRY)
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def get_config(name: str, **overrides: Any) -> ModelConfig:
    """Config of preset `name` with `overrides` applied; unknown names list the valid ones."""
    if name not in MODEL_REGISTRY:
        raise ConfigError(f"unknown model {name!r}; available models: {', '.join(list_models())}")
    config = MODEL_REGISTRY[name]()
    return config.replace(**overrides) if overrides else config


def create_model(name_or_config: str | ModelConfig | dict, **overrides: Any):
    """Build a `DeepGCN` from a preset name, a `ModelConfig` or a config dict (+ overrides)."""
    from pointseg.models.backbone import DeepGCN

    if isinstance(name_or_config, str):
        config = get_config(name_or_config, **overrides)
    elif isinstance(name_or_config, ModelConfig) or hasattr(name_or_config, "kind"):
        config = name_or_config.replace(**overrides) if overrides else name_or_config
    elif isinstance(name_or_config, dict):
        config = ModelConfig.from_dict({**name_or_config, **overrides})
    else:
        raise ConfigError(
            f"create_model expects a preset name, ModelConfig or dict, got "
            f"{type(name_or_config).__name__}"
        )
    if getattr(config, "kind", None) == "dgcnn":
        from pointseg.models.dgcnn import DGCNN

        return DGCNN(config)
    return DeepGCN(config)


def preset_description(name: str) -> str:
    doc = (MODEL_REGISTRY[name].__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


# ---------------------------------------------------------------------------------------------
# S3DIS segmentation presets (DESIGN §3). Defaults of ModelConfig = the published ResGCN-28.


@register_model
def resgcn28() -> ModelConfig:
    """ResGCN-28, S3DIS: EdgeConv, dilation d=i, Conv→ReLU→BN (original PyTorch), 3,644,301 params."""
    return ModelConfig()


@register_model
def resgcn28_tf() -> ModelConfig:
    """ResGCN-28 with the original TensorFlow ordering Conv→BN→ReLU."""
    return ModelConfig(order="conv_norm_act")


@register_model
def resgcn28w() -> ModelConfig:
    """Wide ResGCN-28: 128 channels per graph layer."""
    return ModelConfig(channels=128)


@register_model
def resmrgcn28() -> ModelConfig:
    """ResMRGCN-28: max-relative graph convolution (MRConv) instead of EdgeConv."""
    return ModelConfig(conv="mr")


@register_model
def densegcn28() -> ModelConfig:
    """DenseGCN-28: block i takes 64·i channels (concatenation), adds 64 (growth)."""
    return ModelConfig(block="dense")


@register_model
def plaingcn28() -> ModelConfig:
    """PlainGCN-28: no residual, dilation 1, no stochastic dilation."""
    return ModelConfig(block="plain", dilation=False, stochastic=False)


@register_model
def resplusgcn28() -> ModelConfig:
    """Res+GCN-28: DeeperGCN pre-activation residual blocks (norm → act → conv → add)."""
    return ModelConfig(block="res+")


def _register_depth(prefix: str, depth: int, **kw: Any) -> None:
    def preset() -> ModelConfig:
        return ModelConfig(num_blocks=depth, **kw)

    kind = {"resgcn": "ResGCN", "plaingcn": "PlainGCN"}[prefix]
    preset.__name__ = f"{prefix}{depth}"
    preset.__doc__ = f"{kind}-{depth}, S3DIS layout ({depth} graph layers)."
    register_model(preset)


for _depth in (7, 14, 56, 112):
    _register_depth("resgcn", _depth)
for _depth in (7, 14, 56):
    _register_depth("plaingcn", _depth, block="plain", dilation=False, stochastic=False)


# ---------------------------------------------------------------------------------------------
# ModelNet40 classification (DESIGN §3; original `examples/modelnet_cls/architecture.py`).
# The original builds block j (0-based) with dilation j + 1, i.e. d = i for 1-based block i —
# the same rule as S3DIS. As there: head conv and fusion without bias, LeakyReLU(0.2) in the
# fusion and prediction layers, dropout after each hidden prediction layer.

_MODELNET = dict(
    task="classification",
    in_channels=3,
    num_classes=40,
    k=9,
    dropout=0.5,
    pooling="max+mean",
    head_act="leaky_relu",
    stem_bias=False,
    fusion_bias=False,
)


@register_model
def resgcn28_modelnet() -> ModelConfig:
    """ResGCN-28, ModelNet40: k=9, 3 input channels, 40 classes, max‖mean pooling, dropout 0.5."""
    return ModelConfig(**_MODELNET)


@register_model
def resgcn14_modelnet() -> ModelConfig:
    """ResGCN-14, ModelNet40 (the original code's default depth)."""
    return ModelConfig(num_blocks=14, **_MODELNET)


@register_model
def densegcn28_modelnet() -> ModelConfig:
    """DenseGCN-28, ModelNet40; fuses every block's full output (25,984 ch) like the original."""
    return ModelConfig(block="dense", dense_fusion="all", **_MODELNET)


@register_model
def plaingcn28_modelnet() -> ModelConfig:
    """PlainGCN-28, ModelNet40 (no dilation, no stochastic dilation)."""
    return ModelConfig(block="plain", dilation=False, stochastic=False, **_MODELNET)


# ---------------------------------------------------------------------------------------------
# Very deep models (docs/reversible.md): grouped reversible RevGCN (RevGNN, Li et al., ICML'21),
# weight-tied RevGCN, DEQ-GCN, checkpointed ResGCN. Beyond 28 layers the dilation cycles through
# 1..27 (ResGCN-28's schedule, k·d <= 432 <= 4096 points). The RevGCN presets keep their dynamic
# graphs (int16, N·k·2 bytes per group and layer): float32 graphs rebuilt from reconstructed inputs
# flip neighbours at near ties, and a flipped graph corrupts the reconstruction below it
# (docs/reversible.md). `--set model.keep_graphs=false` gives the depth-independent memory.

_REV = dict(block="rev", groups=2, keep_graphs=True)


def _register_deep(name: str, doc: str, **kw: Any) -> None:
    def preset() -> ModelConfig:
        return ModelConfig(**kw)

    preset.__name__ = name
    preset.__doc__ = doc
    register_model(preset)


_register_deep("revgcn28", "RevGCN-28, S3DIS: 2-group reversible EdgeConv blocks, d=i.", **_REV)
for _depth in (112, 448, 1001):
    _register_deep(
        f"revgcn{_depth}",
        f"RevGCN-{_depth}, S3DIS: reversible, memory independent of depth, d cycles 1..27.",
        num_blocks=_depth,
        dilation_cycle=27,
        **_REV,
    )
_register_deep(
    "revgcn112_wt",
    "Weight-tied RevGCN-112, S3DIS: one block's weights shared by all 111 layers.",
    num_blocks=112,
    dilation_cycle=27,
    weight_tied=True,
    **_REV,
)
_register_deep(
    "deqgcn",
    "DEQ-GCN, S3DIS: head conv + one equilibrium EdgeConv layer (Anderson, graph of h_0).",
    block="deq",
    num_blocks=2,
)
_register_deep(
    "resgcn112_ckpt",
    "ResGCN-112 with gradient checkpointing (each block recomputed in backward).",
    num_blocks=112,
    checkpoint=True,
)
_register_deep(
    "revgcn28_modelnet",
    "RevGCN-28, ModelNet40: reversible blocks in the ResGCN-28 ModelNet layout.",
    **_MODELNET,
    **_REV,
)
_register_deep(
    "revgcn112_modelnet",
    "RevGCN-112, ModelNet40: reversible, d cycles 1..27.",
    num_blocks=112,
    dilation_cycle=27,
    **_MODELNET,
    **_REV,
)


# ---------------------------------------------------------------------------------------------
# Tiny presets: every conv / block / order / task in a model small enough to test in milliseconds
# (16 channels, 4 graph layers, k = 4; needs >= k·3 = 12 points).

_TINY = dict(channels=16, num_blocks=4, k=4, fusion_channels=32, head_channels=(32, 16))


def _register_tiny(name: str, doc: str, **kw: Any) -> None:
    def preset() -> ModelConfig:
        return ModelConfig(**{**_TINY, **kw})

    preset.__name__ = name
    preset.__doc__ = doc
    register_model(preset)


_register_tiny("resgcn4_tiny", "Tiny ResGCN-4 (16 ch) for tests.")
_register_tiny("resgcn4_tiny_tf", "Tiny ResGCN-4, Conv→BN→ReLU.", order="conv_norm_act")
_register_tiny("densegcn4_tiny", "Tiny DenseGCN-4 for tests.", block="dense")
_register_tiny(
    "plaingcn4_tiny", "Tiny PlainGCN-4 for tests.", block="plain", dilation=False, stochastic=False
)
_register_tiny("resplusgcn4_tiny", "Tiny Res+GCN-4 for tests.", block="res+")
_register_tiny("resmrgcn4_tiny", "Tiny ResMRGCN-4 for tests.", conv="mr")
_register_tiny("ressagegcn4_tiny", "Tiny ResGCN-4 with GraphSAGE convs.", conv="sage")
_register_tiny("resgingcn4_tiny", "Tiny ResGCN-4 with GIN convs.", conv="gin")
_register_tiny(
    "densegcn4_tiny_modelnet",
    "Tiny DenseGCN-4 classifier fusing every block's full output.",
    **{**_MODELNET, "k": 4, "block": "dense", "dense_fusion": "all"},
)
_register_tiny("resgcn4_tiny_static", "Tiny ResGCN-4 on the static xyz graph.", dynamic=False)
_register_tiny(
    "resgcn4_tiny_modelnet",
    "Tiny ResGCN-4 classifier (ModelNet layout).",
    **{**_MODELNET, "k": 4},
)
_register_tiny("revgcn4_tiny", "Tiny RevGCN-4 (2 groups, shared block dropout).", block="rev",
               block_dropout=0.1)  # fmt: skip
_register_tiny("revgcn4_tiny_wt", "Tiny weight-tied RevGCN-4.", block="rev", weight_tied=True)
_register_tiny("deqgcn_tiny", "Tiny DEQ-GCN (head conv + equilibrium layer).", block="deq",
               num_blocks=2)  # fmt: skip
_register_tiny("resgcn4_tiny_ckpt", "Tiny ResGCN-4 with gradient checkpointing.", checkpoint=True)
