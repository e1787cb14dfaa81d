"""Named model presets (timm-style), one registry for point-cloud and graph models.

A preset is a function registered with `@register_model` that returns a `ModelConfig` (point
clouds, `DeepGCN`) or a `GraphModelConfig` (general graphs, `GraphDeepGCN`; see
`pointseg.models.graph_presets`). `get_config(name)` and `create_model(name)` work for both; the
model is always built from its config, so a checkpoint (which stores the config) never needs the
preset name to be rebuilt. Presets registered with ``hidden=True`` (the tiny test models) are
left out of `pointseg models`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from pointseg.errors import ConfigError
from pointseg.models.config import ModelConfig

__all__ = [
    "MODEL_REGISTRY",
    "build_model",
    "config_from_dict",
    "create_model",
    "get_config",
    "get_graph_config",
    "is_hidden",
    "list_models",
    "model_kind",
    "register_graph_model",
    "register_kind",
    "register_model",
]

MODEL_REGISTRY: dict[str, Callable[[], Any]] = {}
_KIND: dict[str, str] = {}  # name -> "point" | "graph"
_HIDDEN: set[str] = set()
KINDS = ("point", "graph")


def register_model(
    fn: Callable[[], Any] | None = None, *, kind: str = "point", hidden: bool = False
):
    """Register a preset under its function name (the docstring's first line describes it).

    Usable as ``@register_model`` or ``@register_model(hidden=True)``. ``kind`` is "point" for a
    `ModelConfig` preset, "graph" for a `GraphModelConfig` one.
    """
    if kind not in KINDS:
        raise ValueError(f"model kind {kind!r} is not known; valid: {', '.join(KINDS)}")

    def add(f: Callable[[], Any]) -> Callable[[], Any]:
        if f.__name__ in MODEL_REGISTRY:
            raise ValueError(f"model preset {f.__name__!r} is already registered")
        MODEL_REGISTRY[f.__name__] = f
        _KIND[f.__name__] = kind
        if hidden:
            _HIDDEN.add(f.__name__)
        return f

    return add if fn is None else add(fn)


def register_graph_model(name: str, doc: str, *, hidden: bool = False, **fields_: Any) -> None:
    """Register a graph preset: a `GraphModelConfig` with `fields_` set; `doc` describes it."""

    def preset():
        from pointseg.models.graph import GraphModelConfig

        return GraphModelConfig(**fields_)

    preset.__name__ = name
    preset.__doc__ = doc
    register_model(preset, kind="graph", hidden=hidden)


def model_kind(name: str) -> str:
    """ "point" or "graph" for a registered preset."""
    _check(name)
    return _KIND[name]


def is_hidden(name: str) -> bool:
    return name in _HIDDEN


def list_models(
    pattern: str | None = None, *, kind: str | None = "point", include_hidden: bool = True
) -> list[str]:
    """Sorted preset names of `kind` ("point", "graph", None = both), optionally filtered by a
    shell-style pattern (e.g. "resgcn*"); ``include_hidden=False`` drops the test-only presets."""
    names = sorted(
        n
        for n in MODEL_REGISTRY
        if (kind is None or _KIND[n] == kind) and (include_hidden or n not in _HIDDEN)
    )
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def _check(name: str) -> None:
    if name not in MODEL_REGISTRY:
        raise ConfigError(
            f"unknown model {name!r}; available models: {', '.join(list_models(kind=None))}"
        )


def get_config(name: str, **overrides: Any):
    """Config of preset `name` with `overrides` applied; unknown names list the valid ones."""
    _check(name)
    config = MODEL_REGISTRY[name]()
    return config.replace(**overrides) if overrides else config


def get_graph_config(name: str, **overrides: Any):
    """`get_config` for a graph preset; a point-cloud or unknown name lists the graph presets."""
    if name not in MODEL_REGISTRY or _KIND[name] != "graph":
        raise ConfigError(
            f"unknown graph model {name!r}; available graph models: "
            f"{', '.join(list_models(kind='graph'))}"
        )
    return get_config(name, **overrides)


def register_kind(kind: str, config_cls: type, model_cls: Callable[[Any], Any]) -> None:
    """Declare a model family stored in checkpoints as ``model_config["kind"] == kind``: its
    config class (with ``from_dict``) and its model class (built from a config). Called where the
    family is defined (`pointseg.models.graph_presets`, `pointseg.models.dgcnn`)."""
    if kind in _FAMILIES and _FAMILIES[kind] != (config_cls, model_cls):
        raise ValueError(f"model kind {kind!r} is already registered")
    _FAMILIES[kind] = (config_cls, model_cls)


_FAMILIES: dict[str, tuple[type, Callable[[Any], Any]]] = {}


def _family(kind: str | None) -> tuple[type, Callable[[Any], Any]]:
    if kind in (None, "", "point"):
        from pointseg.models.backbone import DeepGCN

        return ModelConfig, DeepGCN
    if kind not in _FAMILIES:
        raise ConfigError(
            f"unknown model kind {kind!r}; known: point, {', '.join(sorted(_FAMILIES))}"
        )
    return _FAMILIES[kind]


def config_from_dict(d: dict[str, Any]):
    """The config of a stored ``model_config`` dict: `ModelConfig`, or its ``kind``'s class."""
    return _family(d.get("kind"))[0].from_dict(dict(d))


def build_model(config):
    """The model of a config: `DeepGCN`, or the model class of its ``kind``."""
    return _family(getattr(config, "kind", None))[1](config)


def create_model(name_or_config: Any, **overrides: Any):
    """Build the model of a preset name, a config (any kind) or a config dict (+ overrides):
    `DeepGCN` for a `ModelConfig`, `GraphDeepGCN` for ``kind: graph``, `DGCNN` for ``kind: dgcnn``."""
    if isinstance(name_or_config, str):
        config = get_config(name_or_config, **overrides)
    elif isinstance(name_or_config, dict):
        config = config_from_dict({**name_or_config, **overrides})
    elif hasattr(name_or_config, "replace") and hasattr(name_or_config, "to_dict"):
        config = name_or_config.replace(**overrides) if overrides else name_or_config
    else:
        raise ConfigError(
            f"create_model expects a preset name, a model config or dict, got "
            f"{type(name_or_config).__name__}"
        )
    return build_model(config)


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
    register_model(preset, hidden=True)  # test-only: not listed by `pointseg models`


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
