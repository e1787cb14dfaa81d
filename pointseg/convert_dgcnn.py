"""The published DGCNN S3DIS models (dgcnn.pytorch, `DGCNN_semseg_s3dis`) → pointseg's `dgcnn_s3dis`,
and the recognition of every checkpoint format `pointseg convert` meets.

dgcnn.pytorch publishes one model per S3DIS fold (`pretrained/semseg_s3dis/model_<area>.t7`): a plain
state dict saved from ``nn.DataParallel`` (keys prefixed ``module.``), 89 tensors:

    conv1.0.weight [64, 18, 1, 1]   conv1.1.* BatchNorm2d     edge MLP of layer 1, first conv
    conv2.0.weight [64, 64, 1, 1]   conv2.1.*                 edge MLP of layer 1, second conv
    conv3 [64, 128, 1, 1], conv4 [64, 64, 1, 1]               layer 2
    conv5 [64, 128, 1, 1]                                      layer 3 (one conv)
    conv6.0.weight [1024, 192, 1]   conv6.1.* BatchNorm1d     fusion (emb_dims = 1024)
    conv7 [512, 1216, 1], conv8 [256, 512, 1]                  prediction MLP ([g, x1, x2, x3] in)
    conv9.weight [13, 256, 1]                                  classifier, no bias
    bn1..bn8.*                                                 the same BatchNorms again (the
                                                               original registers each twice)

Every conv is bias-free. The EdgeConv input is ``[x_j − x_i, x_i]`` (ours: ``[x_i, x_j − x_i]``),
so the first conv of each layer has its two column halves swapped. The duplicated ``bn<i>`` keys
must equal their ``conv<i>.1`` twins (they are one module in the original) and are then dropped.

The input recipe the weights were trained with (PointNet's `room2blocks_plus_normalized`, as the
dgcnn.pytorch S3DIS loader reads it) is stored in the converted checkpoint: see `DGCNN_S3DIS_RECIPE`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pointseg.errors import ConfigError

__all__ = [
    "DGCNN_S3DIS_RECIPE",
    "detect_format",
    "dgcnn_key_map",
    "convert_dgcnn_state_dict",
    "check_dgcnn_layers",
    "is_dgcnn_fixture",
]

# The nine channels of PointNet's S3DIS blocks, as DGCNN was trained on them (DESIGN §4): x, y minus
# (the min over the block's *sampled* points + block_size / 2), z of the room shifted to a zero
# minimum, rgb / 255, and x, y, z of the shifted room divided by the room's maximum.
DGCNN_S3DIS_RECIPE: dict[str, Any] = {
    "channels": ["x_centred", "y_centred", "z", "r", "g", "b", "x_room", "y_room", "z_room"],
    "block_size": 1.0,
    "num_point": 4096,
    "centering": "sampled",
    "room_normalisation": "max",
    "k": 20,
    "graph_channels": [6, 9],
    "source": "dgcnn.pytorch S3DIS loader (PointNet room2blocks_plus_normalized)",
}


def _shape(state: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...] | None:
    v = state.get(key)
    return tuple(v.shape) if isinstance(v, torch.Tensor) else None


def detect_format(state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> str:
    """The architecture of a state dict (``module.`` already stripped), from its keys and shapes.

    Returns "deep_gcns_torch" (original DeepGCN dense models) or "dgcnn_s3dis"; any other known
    model (DGCNN classification, part segmentation, ScanNet or other class counts) and anything
    unknown raises a ConfigError that names what was found.
    """
    keys = list(state)
    if any(k.startswith("head.gconv.") for k in keys):
        return "deep_gcns_torch"
    c1 = _shape(state, "conv1.0.weight")
    if c1 is not None:
        found = f"conv1.0.weight {list(c1)}"
        if (
            any(k.startswith("transform_net.") for k in keys)
            or "conv7.0.weight" in state
            and any(k.startswith("label_conv") for k in keys)
        ):
            raise ConfigError(
                f"{source}: a DGCNN part-segmentation model (ShapeNetPart: transform_net / "
                f"label_conv keys, {found}); only the DGCNN S3DIS semantic-segmentation model "
                "(dgcnn.pytorch semseg_s3dis) can be converted"
            )
        if "linear1.weight" in state or "linear3.weight" in state:
            out = _shape(state, "linear3.weight")
            classes = f"{out[0]} classes" if out else "a linear classifier"
            raise ConfigError(
                f"{source}: a DGCNN classification model (linear1..3 head, {classes}, {found}); "
                "only the DGCNN S3DIS semantic-segmentation model (dgcnn.pytorch semseg_s3dis) "
                "can be converted"
            )
        c9 = _shape(state, "conv9.weight")
        if c9 is None:
            raise ConfigError(
                f"{source}: DGCNN-style keys ({found}) but no 'conv9.weight' classifier; not the "
                f"dgcnn.pytorch S3DIS segmentation model (keys: {_key_summary(keys)})"
            )
        if c1[1] != 18:
            raise ConfigError(
                f"{source}: a DGCNN segmentation model whose first EdgeConv takes {c1[1] // 2} "
                f"input channels ({found}); the S3DIS model takes 9 (2·9 = 18 edge channels)"
            )
        if c9[0] != 13:
            hint = " (ScanNet has 20/21)" if c9[0] in (20, 21) else ""
            raise ConfigError(
                f"{source}: a DGCNN semantic-segmentation model with {c9[0]} classes{hint} "
                f"(conv9.weight {list(c9)}); only the 13-class S3DIS model can be converted"
            )
        return "dgcnn_s3dis"
    raise ConfigError(
        f"{source}: unknown architecture: not an original deep_gcns_torch dense model (no "
        f"'head.gconv.*' keys) nor the DGCNN S3DIS model ('conv1.0.weight' … 'conv9.weight'); keys: "
        f"{_key_summary(keys)}"
    )


def _key_summary(keys: list[str]) -> str:
    shown = keys[:6]
    more = f" … ({len(keys)} in all)" if len(keys) > len(shown) else ""
    return ", ".join(shown) + more


def dgcnn_key_map(model: torch.nn.Module) -> dict[str, str]:
    """{our state-dict key: original key} for `DGCNN(dgcnn_s3dis())`."""
    from pointseg.models.dgcnn import DGCNN

    if not isinstance(model, DGCNN) or [len(w) for w in model.config.edge_channels] != [2, 2, 1]:
        raise ConfigError("the DGCNN S3DIS weights need the dgcnn_s3dis layout (edge MLPs 2, 2, 1)")
    prefixes = {
        "convs.0.lin.": "conv1.0.",
        "convs.0.norm.": "conv1.1.",
        "convs.0.mlp.0.lin.": "conv2.0.",
        "convs.0.mlp.0.norm.": "conv2.1.",
        "convs.1.lin.": "conv3.0.",
        "convs.1.norm.": "conv3.1.",
        "convs.1.mlp.0.lin.": "conv4.0.",
        "convs.1.mlp.0.norm.": "conv4.1.",
        "convs.2.lin.": "conv5.0.",
        "convs.2.norm.": "conv5.1.",
        "head.fusion.lin.": "conv6.0.",
        "head.fusion.norm.": "conv6.1.",
        "head.layers.0.lin.": "conv7.0.",
        "head.layers.0.norm.": "conv7.1.",
        "head.layers.1.lin.": "conv8.0.",
        "head.layers.1.norm.": "conv8.1.",
        "head.classifier.": "conv9.",
    }
    mapping = {}
    for key in model.state_dict():
        # longest prefix first: "convs.0.mlp.0.lin." before "convs.0.lin." cannot clash, but
        # "convs.0.lin." must not match "convs.0.mlp..."; exact prefixes make this safe
        for ours, orig in prefixes.items():
            if key.startswith(ours):
                mapping[key] = orig + key[len(ours) :]
                break
        else:
            raise ConfigError(f"no DGCNN counterpart for model key {key!r}")
    return mapping


def convert_dgcnn_state_dict(
    state: Mapping[str, torch.Tensor], source: str = "checkpoint"
) -> tuple[torch.nn.Module, Any]:
    """Original DGCNN S3DIS state dict (``module.`` stripped) → (our `DGCNN` in eval mode, config).

    ConfigError names every missing, unexpected or wrongly shaped key, and a ``bn<i>`` duplicate
    that differs from its ``conv<i>.1`` twin.
    """
    from pointseg.checkpoint import load_state_dict_checked
    from pointseg.models.dgcnn import DGCNN, DGCNNConfig

    config = DGCNNConfig()
    model = DGCNN(config)
    mapping = dgcnn_key_map(model)
    twins = {}
    for key in state:
        m = re.fullmatch(r"bn(\d)\.(.+)", key)
        if m:
            twins[key] = f"conv{m.group(1)}.1.{m.group(2)}"
    expected = set(mapping.values())
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected - {k for k, t in twins.items() if t in expected})
    missing += sorted(f"bn{i}.{leaf}" for i in range(1, 9)
                      for leaf in ("weight", "bias", "running_mean", "running_var",
                                   "num_batches_tracked")
                      if f"bn{i}.{leaf}" not in state)  # fmt: skip
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        raise ConfigError(
            f"{source}: does not match the DGCNN S3DIS model (89 tensors): " + ", ".join(parts)
        )
    for dup, twin in twins.items():
        if not torch.equal(state[dup], state[twin]):
            raise ConfigError(f"{source}: {dup} differs from {twin} (one module in the original)")
    ours = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, orig in mapping.items():
        value = state[orig]
        target = ours[key].shape
        if value.dim() in (3, 4) and len(target) == 2:
            if any(s != 1 for s in value.shape[2:]):
                raise ConfigError(
                    f"{source}: {orig!r} should be a 1×1 conv weight, got {list(value.shape)}"
                )
            value = value.reshape(value.shape[0], value.shape[1])
        if value.shape != target:
            raise ConfigError(
                f"{source}: {orig!r} has shape {list(state[orig].shape)}; expected "
                f"{list(target)} (as {key!r})"
            )
        if orig.endswith("0.weight") and orig[:5] in ("conv1", "conv3", "conv5"):
            # [x_j − x_i, x_i] (theirs) → [x_i, x_j − x_i] (ours): swap the column halves
            half = value.shape[1] // 2
            value = torch.cat([value[:, half:], value[:, :half]], dim=1)
        out[key] = value.detach().clone().contiguous()
    load_state_dict_checked(model, out, f"converted {source}")
    return model.eval(), config


def is_dgcnn_fixture(path: str | os.PathLike) -> bool:
    with np.load(path) as z:
        return "knn1" in z.files and "input" in z.files


def _rel_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    denom = float(ref.double().norm())
    diff = float((ours.double() - ref.double()).norm())
    return diff / denom if denom > 0 else diff


@torch.no_grad()
def check_dgcnn_layers(model: torch.nn.Module, layers_npz: str | os.PathLike) -> dict[str, Any]:
    """Fidelity of a converted DGCNN against `dgcnn_s3dis_area5_layers.npz` (recorded by the
    original code): each layer from the saved input of that layer with the saved neighbours, the
    global embedding and the logits from the saved layer outputs, our kNN against the saved
    neighbours (fraction of slots found, as sets per row), and the logits end to end (our graphs).

    Returns {"layers": [3 relative errors], "emb", "logits", "end_to_end", "graph_agreement":
    [3 fractions, repeated points interchangeable], "graph_agreement_by_index", "prediction_agreement"
    (end-to-end argmax vs the saved logits' argmax), "accuracy" / "reference_accuracy" (end-to-end /
    saved argmax vs the saved labels)}.
    """
    path = Path(layers_npz)
    if not path.is_file():
        raise ConfigError(f"reference layers file not found: {path}")
    need = ("input", "knn1", "knn2", "knn3", "x1", "x2", "x3", "emb", "logits")
    with np.load(path) as z:
        missing = [k for k in need if k not in z.files]
        if missing:
            raise ConfigError(f"{path}: missing arrays {missing} (expected the DGCNN fixture)")
        arrays = {k: torch.from_numpy(np.asarray(z[k])) for k in need}
    x = arrays["input"].float().transpose(1, 2).contiguous()  # (B, N, 9)
    nbrs = [arrays[f"knn{i}"].long() for i in (1, 2, 3)]  # (B, N, k) each
    outs = [arrays[f"x{i}"].float().transpose(1, 2).contiguous() for i in (1, 2, 3)]  # (B, N, 64)
    logits_ref = arrays["logits"].float().transpose(1, 2)  # (B, N, 13)
    with np.load(path) as z:
        label = torch.from_numpy(z["label"].astype(np.int64)) if "label" in z.files else None
    if x.shape[-1] != model.config.in_channels:
        raise ConfigError(
            f"{path}: input has {x.shape[-1]} channels, the model takes {model.config.in_channels}"
        )
    was_training = model.training
    model.eval()
    try:
        errors, agreement, by_index = [], [], []
        for i in range(model.num_layers):
            h = x if i == 0 else outs[i - 1]
            out, _ = model.forward_layer(i, h, nbrs[i])
            errors.append(_rel_error(out, outs[i]))
            idx = model.graph(i, h)  # (B, N, k): our kNN on the saved input
            found = (idx.unsqueeze(-1) == nbrs[i].unsqueeze(-2)).any(-1)  # (B, N, k)
            by_index.append(float(found.float().mean()))
            # The blocks repeat points (PointNet samples short blocks with replacement): copies
            # have identical features, so which copy fills a slot is arbitrary. A slot agrees when
            # our neighbour's graph features equal those of one of the original's neighbours.
            g = model.graph_features(i, h)  # (B, N, C_graph)
            ours_f = torch.stack([g[b][idx[b]] for b in range(g.shape[0])])  # (B, N, k, C)
            ref_f = torch.stack([g[b][nbrs[i][b]] for b in range(g.shape[0])])  # (B, N, k, C)
            same = torch.zeros(idx.shape, dtype=torch.bool)
            for j in range(idx.shape[-1]):  # one reference slot at a time: (B, N, k, C) memory
                same |= (ours_f == ref_f[:, :, j : j + 1]).all(-1)
            agreement.append(float(same.float().mean()))
        emb = model.head.global_feature(torch.cat(outs, dim=-1))  # (B, 1024)
        logits = model.forward_head(outs)
        end_to_end = model(x)
    finally:
        model.train(was_training)
    return {
        "layers": errors,
        "emb": _rel_error(emb, arrays["emb"].float()),
        "logits": _rel_error(logits, logits_ref),
        "end_to_end": _rel_error(end_to_end, logits_ref),
        "graph_agreement": agreement,
        "graph_agreement_by_index": by_index,
        "prediction_agreement": float(
            (end_to_end.argmax(-1) == logits_ref.argmax(-1)).float().mean()
        ),
        **(
            {
                "accuracy": float((end_to_end.argmax(-1) == label).float().mean()),
                "reference_accuracy": float((logits_ref.argmax(-1) == label).float().mean()),
            }
            if label is not None
            else {}
        ),
    }
