"""Convert checkpoints of the original deep_gcns_torch dense models into pointseg checkpoints.

Original format (examples/sem_seg_dense `train.py`; also examples/modelnet_cls):
``{"epoch": int, "state_dict": {...}, "best_value": float, ...}`` with a `DenseDeepGCN` whose
keys are (``BasicConv`` = Sequential of Conv2d(1×1) → act → norm, so the norm sits at index 2,
or 1 without an activation):

    head.gconv.nn.{0,2}.*                  head EdgeConv/MRConv (Conv2d 2·C_in → C)
    backbone.<j>.body.gconv.nn.{0,2}.*     block j+1 (j = 0..L−2)
    fusion_block.{0,2}.*                   1792 → 1024
    prediction.<p>.{0,2}.*                 2816 → 512, 512 → 256 (segmentation: dropout at
    prediction.<last>.0.*                  index 2, classifier at 3; ModelNet: classifier at 2)

Conv weights ``[out, in, 1, 1]`` become ``nn.Linear`` weights ``[out, in]`` (the EdgeConv input
order ``[x_i, x_j − x_i]`` is the same as ours); BatchNorm keys map one to one. DataParallel's
``module.`` prefix is stripped. Shapes decide the architecture (channels, depth, dense vs
res, classes, fusion and head widths, biases, norm); what shapes cannot tell (EdgeConv vs MRConv,
res vs plain, k, dilation) comes from the base preset and explicit overrides.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pointseg.checkpoint import FORMAT, _load_error, load_state_dict_checked
from pointseg.errors import ConfigError
from pointseg.models.config import ModelConfig
from pointseg.models.registry import get_config

__all__ = [
    "load_original_state_dict",
    "infer_original_config",
    "original_key_map",
    "convert_state_dict",
    "convert_original",
    "convert_original_file",
    "check_layers",
]

_NORM_LEAVES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def load_original_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read an original checkpoint (`weights_only=True`); returns (state_dict, other top keys)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"original checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a user-file problem
        raise ConfigError(
            f"{path}: cannot be read as a torch checkpoint ({_load_error(exc)})"
        ) from None
    if not isinstance(obj, dict):
        raise ConfigError(f"{path}: expected a dict checkpoint, got {type(obj).__name__}")
    if obj.get("format") == FORMAT:
        raise ConfigError(f"{path}: already a pointseg checkpoint; nothing to convert")
    if "state_dict" in obj:
        state, rest = obj["state_dict"], {k: v for k, v in obj.items() if k != "state_dict"}
    elif "model_state_dict" in obj:
        state, rest = (
            obj["model_state_dict"],
            {k: v for k, v in obj.items() if k != "model_state_dict"},
        )
    elif obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state, rest = obj, {}
    else:
        raise ConfigError(
            f"{path}: no 'state_dict' key; top-level keys are {sorted(map(str, obj))} "
            f"(expected the original format {{'epoch', 'state_dict', 'best_value'}})"
        )
    if not isinstance(state, dict) or not state:
        raise ConfigError(f"{path}: 'state_dict' is empty or not a dict")
    if all(isinstance(k, str) and k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ConfigError(f"{path}: state dict entries that are not tensors: {bad[:5]}")
    from pointseg.convert_dgcnn import detect_format

    detect_format(state, str(path))  # an unknown or unsupported architecture fails here
    return state, rest


def _require(state: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in state:
        raise ConfigError(f"original checkpoint is missing key {key!r}")
    return state[key]


def infer_original_config(
    state: Mapping[str, torch.Tensor], base: str | ModelConfig | None = None, **overrides: Any
) -> ModelConfig:
    """Architecture of an original state dict: shapes first, then `base`, then `overrides`.

    `base` defaults to "resgcn28" (segmentation) or "resgcn28_modelnet" (classification),
    chosen by the width of the first prediction layer.
    """
    w_head = _require(state, "head.gconv.nn.0.weight")  # (C, 2·C_in, 1, 1)
    channels, in_channels = int(w_head.shape[0]), int(w_head.shape[1]) // 2
    blocks = sorted({int(m.group(1)) for k in state if (m := re.match(r"backbone\.(\d+)\.", k))})
    if blocks != list(range(len(blocks))):
        raise ConfigError(f"original checkpoint: backbone block indices are not 0..n-1: {blocks}")
    num_blocks = 1 + len(blocks)
    dense = False
    if blocks:
        w1 = _require(state, "backbone.0.body.gconv.nn.0.weight")
        dense = len(blocks) > 1 and int(
            _require(state, "backbone.1.body.gconv.nn.0.weight").shape[1]
        ) == 2 * (2 * channels)
        if int(w1.shape[1]) != 2 * channels:
            raise ConfigError(
                f"original checkpoint: backbone.0.body.gconv.nn.0.weight has shape "
                f"{tuple(w1.shape)}, expected input width 2·{channels}"
            )
    w_fusion = _require(state, "fusion_block.0.weight")
    fusion_channels, feature_channels = int(w_fusion.shape[0]), int(w_fusion.shape[1])
    preds = sorted(
        {int(m.group(1)) for k in state if (m := re.match(r"prediction\.(\d+)\.0\.weight$", k))}
    )
    if not preds:
        raise ConfigError("original checkpoint is missing the 'prediction.*' layers")
    widths = [int(state[f"prediction.{p}.0.weight"].shape[0]) for p in preds]
    first_in = int(state[f"prediction.{preds[0]}.0.weight"].shape[1])
    task = "segmentation" if first_in == feature_channels + fusion_channels else "classification"
    if base is None:
        base = "resgcn28" if task == "segmentation" else "resgcn28_modelnet"
    cfg = get_config(base) if isinstance(base, str) else base
    has_norm = "head.gconv.nn.2.running_mean" in state or "head.gconv.nn.1.running_mean" in state
    bias = "backbone.0.body.gconv.nn.0.bias" in state if blocks else "head.gconv.nn.0.bias" in state
    stem_bias = "head.gconv.nn.0.bias" in state
    fusion_bias = "fusion_block.0.bias" in state
    inferred: dict[str, Any] = dict(
        task=task,
        in_channels=in_channels,
        num_classes=widths[-1],
        channels=channels,
        num_blocks=num_blocks,
        fusion_channels=fusion_channels,
        head_channels=widths[:-1],
        norm="batch" if has_norm else "none",
        bias=bias,
        stem_bias=None if stem_bias == bias else stem_bias,
        fusion_bias=None if fusion_bias == bias else fusion_bias,
    )
    if dense:
        inferred["block"] = "dense"
        # original ModelNet DenseGCN fuses every block's full output: 64·L(L+1)/2 channels
        all_width = channels * num_blocks * (num_blocks + 1) // 2
        inferred["dense_fusion"] = "all" if feature_channels == all_width else "new"
    elif cfg.block == "dense":
        inferred["block"] = "res"
    config = cfg.replace(**{**inferred, **overrides})
    if config.feature_channels != feature_channels:
        raise ConfigError(
            f"original checkpoint: fusion_block.0.weight takes {feature_channels} channels but a "
            f"{config.block} model with {num_blocks} layers of {channels} gives "
            f"{config.feature_channels}"
        )
    return config


def original_key_map(model: torch.nn.Module) -> dict[str, str]:
    """{our state-dict key: original key} for a `DeepGCN` built like the original code."""
    c = model.config
    if c.order != "conv_act_norm":
        raise ConfigError(
            "original deep_gcns_torch checkpoints use order conv_act_norm (Conv → act → BN); "
            f"got order={c.order!r}"
        )
    if c.conv not in ("edge", "mr") or c.block not in ("res", "plain", "dense"):
        raise ConfigError(
            "the original dense code has conv edge|mr and block res|plain|dense; "
            f"got conv={c.conv!r}, block={c.block!r}"
        )

    def basic(prefix: str, act: str | None) -> dict[str, str]:
        # BasicConv = [Conv2d, act?, norm?]: norm sits after the activation if there is one.
        norm_index = 1 if (act or "none") == "none" else 2
        return {"lin": f"{prefix}.0", "norm": f"{prefix}.{norm_index}"}

    head_act = c.act if c.head_act is None else c.head_act
    n_layers = len(model.head.layers)
    # Segmentation: Dropout module sits between the hidden layers and the classifier.
    classifier_index = n_layers + (1 if c.task == "segmentation" else 0)
    prefixes: dict[str, dict[str, str] | str] = {
        "stem": basic("head.gconv.nn", c.act),
        "head.fusion": basic("fusion_block", head_act),
        "head.classifier": f"prediction.{classifier_index}.0",
    }
    for j in range(len(model.blocks)):
        prefixes[f"blocks.{j}.conv"] = basic(f"backbone.{j}.body.gconv.nn", c.act)
    for p in range(n_layers):
        prefixes[f"head.layers.{p}"] = basic(f"prediction.{p}", head_act)

    mapping: dict[str, str] = {}
    for key in model.state_dict():
        for ours, orig in prefixes.items():
            if isinstance(orig, str) and key.startswith(ours + "."):
                mapping[key] = orig + key[len(ours) :]
                break
            if isinstance(orig, dict):
                m = re.match(re.escape(ours) + r"\.(lin|norm)\.(.+)$", key)
                if m:
                    mapping[key] = f"{orig[m.group(1)]}.{m.group(2)}"
                    break
        else:
            raise ConfigError(f"no original counterpart for model key {key!r}")
    return mapping


def convert_state_dict(
    state: Mapping[str, torch.Tensor], model: torch.nn.Module
) -> dict[str, torch.Tensor]:
    """Rename and reshape an original state dict for `model`; ConfigError names every missing,
    unexpected or wrongly shaped original key."""
    mapping = original_key_map(model)
    ours = model.state_dict()
    missing = [orig for orig in mapping.values() if orig not in state]
    unexpected = sorted(set(state) - set(mapping.values()))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        raise ConfigError(
            "original checkpoint does not match the model "
            f"({model.config.num_blocks} layers, block={model.config.block}): " + ", ".join(parts)
        )
    out: dict[str, torch.Tensor] = {}
    for key, orig in mapping.items():
        value = state[orig]
        target = ours[key].shape
        if value.dim() == 4 and len(target) == 2:
            if tuple(value.shape[2:]) != (1, 1):
                raise ConfigError(
                    f"original key {orig!r}: expected a 1×1 conv weight [out, in, 1, 1], "
                    f"got {tuple(value.shape)}"
                )
            value = value[:, :, 0, 0]
        if value.shape != target:
            raise ConfigError(
                f"original key {orig!r} has shape {tuple(state[orig].shape)}; "
                f"expected {tuple(target)} for {key!r}"
            )
        out[key] = value.detach().clone().contiguous()
    return out


def convert_original(
    state: Mapping[str, torch.Tensor],
    base: str | ModelConfig | None = None,
    **overrides: Any,
) -> tuple[torch.nn.Module, ModelConfig]:
    """Original state dict → (our DeepGCN with the converted weights, its config)."""
    from pointseg.models.backbone import DeepGCN

    config = infer_original_config(state, base, **overrides)
    model = DeepGCN(config)
    load_state_dict_checked(model, convert_state_dict(state, model), "converted checkpoint")
    return model.eval(), config


def convert_original_file(
    original: str | os.PathLike,
    out: str | os.PathLike,
    base: str | ModelConfig | None = None,
    *,
    dataset: str | None = None,
    **overrides: Any,
) -> tuple[torch.nn.Module, Path]:
    """Convert an original checkpoint file into a pointseg checkpoint at `out` (atomic write)."""
    result = convert_file(original, out, base, dataset=dataset, **overrides)
    return result["model"], result["path"]


def convert_file(
    original: str | os.PathLike,
    out: str | os.PathLike,
    base: str | ModelConfig | None = None,
    *,
    dataset: str | None = None,
    verify: str | os.PathLike | None = None,
    tolerance: float = 1e-5,
    min_agreement: float = 0.999,
    **overrides: Any,
) -> dict[str, Any]:
    """Recognise, convert, optionally verify, then write `out` (atomically, and only if every
    step passed). The format comes from the keys and shapes (`convert_dgcnn.detect_format`):
    original deep_gcns_torch models, or the published DGCNN S3DIS model.

    Returns {"model", "config", "format", "path" (None when verification failed), "verify"
    (check_layers / check_dgcnn_layers result), "passed" (bool)}.
    """
    from pointseg.checkpoint import save_checkpoint
    from pointseg.convert_dgcnn import (
        DGCNN_S3DIS_RECIPE,
        check_dgcnn_layers,
        convert_dgcnn_state_dict,
        detect_format,
        is_dgcnn_fixture,
    )

    state, rest = load_original_state_dict(original)
    fmt = detect_format(state, str(original))
    if verify is not None and not Path(verify).is_file():
        raise ConfigError(f"reference layers file not found: {verify}")
    if fmt == "dgcnn_s3dis":
        if base is not None or overrides:
            given = ["--base"] * (base is not None) + [f"--{k}" for k in overrides]
            raise ConfigError(
                f"{original}: {', '.join(given)} describe original deep_gcns_torch models; the "
                "DGCNN S3DIS layout is fixed (preset dgcnn_s3dis)"
            )
        model, config = convert_dgcnn_state_dict(state, str(original))
        dataset = dataset or "s3dis"
        recipe = dict(DGCNN_S3DIS_RECIPE)
        original_format = "dgcnn.pytorch DGCNN_semseg_s3dis"
    else:
        model, config = convert_original(state, base, **overrides)
        if dataset is None:
            dataset = "s3dis" if config.task == "segmentation" else "modelnet40"
        recipe = None
        if config.task == "segmentation" and config.in_channels == 9:
            # trained on PointNet's published HDF5 blocks (DESIGN §3)
            recipe = {**DGCNN_S3DIS_RECIPE, "k": config.k, "graph_channels": [0, 3],
                      "source": "deep_gcns_torch sem_seg_dense (PointNet's HDF5 blocks)"}  # fmt: skip
        original_format = "deep_gcns_torch"
    result: dict[str, Any] = {"model": model, "config": config, "format": fmt, "path": None}
    result["passed"] = True
    if verify is not None:
        if is_dgcnn_fixture(verify) != (fmt == "dgcnn_s3dis"):
            raise ConfigError(
                f"{verify}: a fixture of another model than {original} ({fmt}); use "
                "dgcnn_s3dis_area5_layers.npz for DGCNN, resgcn28_original_layers.npz for ResGCN-28"
            )
        if fmt == "dgcnn_s3dis":
            check = check_dgcnn_layers(model, verify)
            errors = [*check["layers"], check["emb"], check["logits"]]
            agreements = [*check["graph_agreement"], check["prediction_agreement"]]
        else:
            check = check_layers(model, verify)
            errors = [*check["layers"], check["logits"]]
            agreements = check["graph_agreement"]
        result["verify"] = check
        result["passed"] = max(errors) <= tolerance and min(agreements) >= min_agreement
        if not result["passed"]:
            return result
    meta: dict[str, Any] = {
        "dataset": dataset,
        "classes": _default_classes(dataset, config.num_classes),
        "converted_from": str(Path(original).name),
        "original_format": original_format,
    }
    if recipe is not None:
        meta["input"] = recipe
    for key in ("epoch", "best_value"):
        value = rest.get(key)
        if isinstance(value, (int, float, str)) or value is None:
            meta[f"original_{key}"] = value
        elif isinstance(value, torch.Tensor) and value.numel() == 1:
            meta[f"original_{key}"] = value.item()
    result["path"] = save_checkpoint(
        out, model_config=config, model_state=model.state_dict(), meta=meta
    )
    return result


def _default_classes(dataset: str, num_classes: int) -> list[str] | None:
    try:
        if dataset == "s3dis":
            from pointseg.data.s3dis import CLASSES
        elif dataset == "modelnet40":
            from pointseg.data.modelnet import MODELNET40_CLASSES as CLASSES
        else:
            return None
    except ImportError:
        return None
    names = list(CLASSES)
    return names if len(names) == num_classes else None


def _rel_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """‖ours − ref‖ / ‖ref‖ (Frobenius), 0 when both are zero."""
    denom = float(ref.double().norm())
    diff = float((ours.double() - ref.double()).norm())
    return diff / denom if denom > 0 else diff


@torch.no_grad()
def check_layers(
    model: torch.nn.Module, layers_npz: str | os.PathLike, *, check_graphs: bool = True
) -> dict[str, Any]:
    """Layer-by-layer fidelity of `model` against a fixture recorded from the original code.

    The fixture (``resgcn28_original_layers.npz``, DESIGN §7) holds ``x`` (B, N, C_in),
    ``neighbours`` (L, B, N, k), ``layer_inputs`` (L−1, B, C, N), ``layer_outputs`` (L, B, C, N)
    and ``logits`` (B, classes, N), channels-first as the original code stores them.
    With the graph fixed to the saved neighbours, layer 0 maps x → outputs[0] and block i maps
    inputs[i−1] → outputs[i]; the head maps all outputs → logits. With `check_graphs`, our dilated
    kNN on each saved input is compared with the saved neighbours as sets per row.

    Returns {"layers": [relative error per layer], "logits": relative error,
    "graph_agreement": [fraction of neighbour slots found per layer] (if checked)}.
    """
    import numpy as np

    from pointseg.graph import dilated_knn

    path = Path(layers_npz)
    if not path.is_file():
        raise ConfigError(f"reference layers file not found: {path}")
    with np.load(path) as z:
        missing = [
            k for k in ("x", "neighbours", "layer_inputs", "layer_outputs", "logits") if k not in z
        ]
        if missing:
            raise ConfigError(f"{path}: missing arrays {missing}")
        x = torch.from_numpy(z["x"]).float()  # (B, N, C_in)
        nbrs = torch.from_numpy(z["neighbours"].astype(np.int64))  # (L, B, N, k)
        inputs = torch.from_numpy(z["layer_inputs"]).float().transpose(2, 3)  # (L−1, B, N, C)
        outputs = torch.from_numpy(z["layer_outputs"]).float().transpose(2, 3)  # (L, B, N, C)
        logits = torch.from_numpy(z["logits"]).float().transpose(1, 2)  # (B, N, classes)
    num_layers = model.num_layers
    if nbrs.shape[0] != num_layers or outputs.shape[0] != num_layers:
        raise ConfigError(f"{path}: holds {outputs.shape[0]} layers, the model has {num_layers}")
    was_training = model.training
    model.eval()
    try:
        errors = []
        for i in range(num_layers):
            h = x if i == 0 else inputs[i - 1].contiguous()
            out, _ = model.forward_layer(i, h, nbrs[i])
            errors.append(_rel_error(out, outputs[i]))
        result: dict[str, Any] = {
            "layers": errors,
            "logits": _rel_error(model.forward_head(list(outputs.unbind(0))), logits),
        }
        if check_graphs:
            agreement = []
            k = model.config.k
            for i in range(num_layers):
                h = x[..., :3].contiguous() if i == 0 else inputs[i - 1].contiguous()
                idx = dilated_knn(h, k, model.config.block_dilation(i))  # (B, N, k)
                found = (idx.unsqueeze(-1) == nbrs[i].unsqueeze(-2)).any(-1)  # (B, N, k)
                agreement.append(float(found.float().mean()))
            result["graph_agreement"] = agreement
    finally:
        model.train(was_training)
    return result
