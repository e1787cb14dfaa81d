"""Fusion and prediction heads of DeepGCN (Li et al., ICCV'19, Fig. 3; DESIGN §3).

Both heads take the concatenated per-layer features `feats (B, N, F)` of the backbone
(F = 28·64 = 1792 for ResGCN-28) and first fuse them per point, F → fusion_channels (1024),
with a `Lin` layer (Linear + act/norm in the configured order).

- `SegmentationHead`: global max pool of the fusion → g (B, 1024), broadcast to every point and
  concatenated with the point features: [g, f_i] (2816; global part first, as the original
  `torch.cat((fusion, feats), dim=1)`) → 512 → 256 → dropout → classes.
- `ClassificationHead`: global max ‖ mean pool of the fusion (2048) → 512 → dropout → 256 →
  dropout → classes (original `examples/modelnet_cls`).

The split trick: the first prediction layer is W·[g, f_i] + b = W_g g + (W_f f_i + b), so the
global part is one (B, 512) vector per cloud instead of a (B, N, 1024) repeated tensor and a
(B, N, 2816) concatenation. The parameters stay those of a plain `nn.Linear(2816, 512)`
(state-dict compatible with the original 1×1 conv), only the forward is split. It is exact up to
floating-point summation order.

Memory (training step of ResGCN-28, B = 2, N = 4096): the heads never keep the 1792-wide
concatenation nor the (B, N, 1024) fusion activations for backward.

- `concat_linear` is ``F.linear(torch.cat(parts, -1), W, b)`` as one autograd node that saves only
  the per-layer parts (alive anyway: each is a block's input) and builds the concatenation in
  row chunks, in forward and again in backward (dW = Σ_chunks dzᵀ·cat_chunk, d part_i = dz·W_i).
- The fusion layer followed by its global pooling runs under `_RecomputePooled`: forward under
  no_grad (only the pooled (B, C) result survives), backward recomputes fusion → act/norm → pool
  with autograd and differentiates it. BatchNorm running statistics are updated once, in the
  forward; the recompute normalises with the same batch statistics (train) or running ones (eval)
  without touching the buffers. Outputs and gradients are those of the plain formulation (same
  ops; only the chunked weight-gradient sums differ in summation order).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from pointseg.nn.mlp import Lin, PointBatchNorm, apply_norm_act, sync_active

__all__ = ["SegmentationHead", "ClassificationHead", "split_linear", "concat_linear"]

# Rows of the concatenation built at once by `concat_linear` (2048 × 1792 floats = 14 MB).
_CONCAT_ROWS = 2048

Features = torch.Tensor | Sequence[torch.Tensor]


def _parts(feats: Features, channels: int, name: str) -> list[torch.Tensor]:
    """Feature parts [(B, N, C_i), ...] with Σ C_i = channels (a tensor is a single part)."""
    parts = [feats] if isinstance(feats, torch.Tensor) else list(feats)
    if not parts or any(not isinstance(p, torch.Tensor) or p.dim() != 3 for p in parts):
        raise ValueError(f"{name}: feats must be a (B, N, C) tensor or a list of them")
    if any(p.shape[:2] != parts[0].shape[:2] for p in parts):
        shapes = [tuple(p.shape) for p in parts]
        raise ValueError(f"{name}: feature parts must share (B, N); got {shapes}")
    width = sum(p.shape[-1] for p in parts)
    if width != channels:
        raise ValueError(f"{name}: expected {channels} feature channels in total, got {width}")
    return parts


class _ConcatLinear(torch.autograd.Function):
    """out = cat(parts, -1) @ weightᵀ (+ bias), saving only the parts and the weight."""

    @staticmethod
    def forward(ctx, weight, bias, *parts):  # parts: (B, N, C_i); out (B, N, O)
        rows = parts[0].shape[0] * parts[0].shape[1]
        flat = [p.reshape(rows, p.shape[-1]) for p in parts]
        out = weight.new_empty(rows, weight.shape[0])
        wt = weight.t()
        for start in range(0, rows, _CONCAT_ROWS):
            stop = min(rows, start + _CONCAT_ROWS)
            chunk = _cat_rows(flat, start, stop)  # (R, F)
            if bias is None:
                torch.mm(chunk, wt, out=out[start:stop])
            else:
                torch.addmm(bias, chunk, wt, out=out[start:stop])
        ctx.save_for_backward(weight, *parts)
        ctx.has_bias = bias is not None
        return out.view(*parts[0].shape[:2], weight.shape[0])

    @staticmethod
    def backward(ctx, grad):  # grad (B, N, O)
        weight, *parts = ctx.saved_tensors
        need_w, need_b, *need_parts = ctx.needs_input_grad
        rows = parts[0].shape[0] * parts[0].shape[1]
        g = grad.reshape(rows, weight.shape[0])  # (rows, O)
        flat = [p.reshape(rows, p.shape[-1]) for p in parts]
        grad_w = torch.zeros_like(weight) if need_w else None
        grad_parts = [
            torch.empty_like(p) if need else None for p, need in zip(flat, need_parts, strict=True)
        ]
        widths = [p.shape[-1] for p in parts]
        for start in range(0, rows, _CONCAT_ROWS):
            stop = min(rows, start + _CONCAT_ROWS)
            g_c = g[start:stop]  # (R, O)
            if need_w:
                grad_w.addmm_(g_c.t(), _cat_rows(flat, start, stop))  # (O, F)
            if any(need_parts):
                d_cat = g_c @ weight  # (R, F)
                for d, piece in zip(grad_parts, d_cat.split(widths, dim=1), strict=True):
                    if d is not None:
                        d[start:stop] = piece
        grad_b = g.sum(0) if need_b and ctx.has_bias else None
        grad_parts = [
            None if d is None else d.view(p.shape) for d, p in zip(grad_parts, parts, strict=True)
        ]
        return grad_w, grad_b, *grad_parts


def _cat_rows(flat: list[torch.Tensor], start: int, stop: int) -> torch.Tensor:
    if len(flat) == 1:
        return flat[0][start:stop]
    return torch.cat([p[start:stop] for p in flat], dim=1)


def concat_linear(
    weight: torch.Tensor, bias: torch.Tensor | None, parts: Sequence[torch.Tensor]
) -> torch.Tensor:
    """``F.linear(torch.cat(parts, -1), weight, bias)`` without keeping the concatenation.

    parts: (B, N, C_i) with Σ C_i = weight.shape[1]; returns (B, N, weight.shape[0]).
    """
    return _ConcatLinear.apply(weight, bias, *parts)


class _RecomputePooled(torch.autograd.Function):
    """``fn(*tensors)`` evaluated without saving its intermediates; recomputed in backward.

    fn(*tensors, recompute) must be deterministic and give the same value on both calls (the
    first call may update BatchNorm running statistics, the recompute must not)."""

    @staticmethod
    def forward(ctx, fn, *tensors):
        ctx.fn = fn
        ctx.save_for_backward(*tensors)
        with torch.no_grad():
            return fn(*tensors, recompute=False)

    @staticmethod
    def backward(ctx, grad):
        tensors = ctx.saved_tensors
        needs = ctx.needs_input_grad[1:]
        with torch.enable_grad():
            inputs = [
                t.detach().requires_grad_(need) if t is not None else None
                for t, need in zip(tensors, needs, strict=True)
            ]
            out = ctx.fn(*inputs, recompute=True)
        wrt = [t for t, need in zip(inputs, needs, strict=True) if need]
        grads = iter(torch.autograd.grad(out, wrt, grad, allow_unused=True)) if wrt else iter(())
        return None, *(next(grads) if need else None for need in needs)


def _lean_fusion_supported(fusion: Lin) -> bool:
    return fusion.norm is None or isinstance(fusion.norm, PointBatchNorm)


def pooled_fusion(fusion: Lin, parts: Sequence[torch.Tensor], pool) -> torch.Tensor:
    """``pool(fusion(cat(parts, -1)))`` keeping neither the concatenation nor the (B, N, C_out)
    fusion activations for backward (see module docstring). pool: (B, N, C) → (B, ·)."""
    norm = fusion.norm
    if not _lean_fusion_supported(fusion) or (norm is not None and sync_active(norm)):
        # (synchronised BN under DDP: the recompute below would normalise with this rank's
        # statistics only; the module path synchronises them)
        return pool(fusion(torch.cat(list(parts), dim=-1)))
    # Normalise with batch statistics now and in the recompute iff the module does now.
    bn_training = norm is not None and (norm.training or norm.running_mean is None)
    n = len(parts)

    def fn(*tensors, recompute: bool):
        w, b, nw, nb = tensors[:4]
        z = concat_linear(w, b, tensors[4 : 4 + n])  # (B, N, C_out)

        def apply_norm(h):
            if not recompute:  # the module itself: updates running statistics once
                return norm(h)
            flat = h.reshape(-1, h.shape[-1])
            rm = None if bn_training else norm.running_mean
            rv = None if bn_training else norm.running_var
            return F.batch_norm(flat, rm, rv, nw, nb, bn_training, 0.0, norm.eps).view(h.shape)

        if norm is None:
            return pool(fusion.act(z))
        if fusion.order == "conv_act_norm":
            return pool(apply_norm(fusion.act(z)))
        return pool(fusion.act(apply_norm(z)))

    nw = nb = None
    if norm is not None:
        nw, nb = norm.weight, norm.bias
    return _RecomputePooled.apply(fn, fusion.lin.weight, fusion.lin.bias, nw, nb, *parts)


def split_linear(lin: nn.Linear, g: torch.Tensor, f: Features) -> torch.Tensor:
    """`lin(cat([g broadcast over points, f], -1))` without building the concatenation.

    g: (B, G) global features, f: (B, N, F) point features (or a list of parts (B, N, F_i)
    concatenated along channels, never materialised), lin: Linear(G + F, out).
    Returns (B, N, out) = W_f f + (W_g g + b) broadcast over N.
    """
    width = g.shape[-1]
    w_g, w_f = lin.weight[:, :width], lin.weight[:, width:]  # (out, G), (out, F)
    if isinstance(f, torch.Tensor):
        point = F.linear(f, w_f)  # (B, N, out)
    else:
        point = concat_linear(w_f, None, f)  # (B, N, out)
    glob = F.linear(g, w_g, lin.bias)  # (B, out)
    return point + glob.unsqueeze(1)


class SegmentationHead(nn.Module):
    """Fusion + global max pool + per-point prediction MLP.

    Shapes: feats (B, N, feature_channels) → logits (B, N, num_classes).
    Parameters: `fusion` (Lin F → fusion), `layers` (Lin 2816 → 512, Lin 512 → 256),
    `classifier` (nn.Linear 256 → classes, no act, no norm).
    """

    def __init__(
        self,
        feature_channels: int,
        num_classes: int,
        *,
        fusion_channels: int = 1024,
        head_channels: Sequence[int] = (512, 256),
        dropout: float = 0.3,
        order: str = "conv_act_norm",
        norm: str | None = "batch",
        act: str | None = "relu",
        bias: bool = True,
        fusion_bias: bool = True,
    ) -> None:
        super().__init__()
        self.feature_channels = feature_channels
        self.fusion_channels = fusion_channels
        self.order = order
        kw = dict(order=order, norm=norm, act=act)
        self.fusion = Lin(feature_channels, fusion_channels, bias=fusion_bias, **kw)
        widths = [feature_channels + fusion_channels, *head_channels]
        self.layers = nn.ModuleList(
            Lin(c_in, c_out, bias=bias, **kw)
            for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(widths[-1], num_classes)

    def global_feature(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, N, F) → (B, fusion_channels): fusion layer, then max over the N points.

        The plain formulation (keeps the fusion activations); `forward` computes the same value
        with `pooled_fusion`."""
        return self.fusion(feats).amax(dim=1)

    def forward(self, feats: Features) -> torch.Tensor:
        """feats: (B, N, F), or the per-layer parts [(B, N, F_i)] whose concatenation it is
        (the memory-lean input: the concatenation is never kept)."""
        parts = _parts(feats, self.feature_channels, "SegmentationHead")
        if not self.layers:
            g = pooled_fusion(self.fusion, parts, lambda h: h.amax(dim=1))  # (B, 1024)
            return split_linear(self.classifier, g, self.dropout(torch.cat(parts, dim=-1)))
        first = self.layers[0]
        # split_linear, with the point part computed BEFORE the fusion: autograd runs later nodes
        # first, so in backward the fusion recompute (~4 (B, N, 1024) transients) finishes
        # before this node's (B, N, F) part gradients exist (−56 MB at the step's peak).
        w_g = first.lin.weight[:, : self.fusion_channels]  # (512, 1024)
        w_f = first.lin.weight[:, self.fusion_channels :]  # (512, F)
        if len(parts) == 1:
            point = F.linear(parts[0], w_f)  # (B, N, 512)
        else:
            point = concat_linear(w_f, None, parts)  # (B, N, 512)
        g = pooled_fusion(self.fusion, parts, lambda h: h.amax(dim=1))  # (B, 1024)
        h = point + F.linear(g, w_g, first.lin.bias).unsqueeze(1)  # (B, N, 512)
        h = apply_norm_act(h, first.norm, first.act, self.order)
        for layer in self.layers[1:]:
            h = layer(h)  # (B, N, 256)
        return self.classifier(self.dropout(h))  # (B, N, classes)


class ClassificationHead(nn.Module):
    """Fusion + global pooling (max, mean or max ‖ mean) + MLP with dropout after hidden layers.

    Shapes: feats (B, N, feature_channels) → logits (B, num_classes).
    """

    def __init__(
        self,
        feature_channels: int,
        num_classes: int,
        *,
        fusion_channels: int = 1024,
        head_channels: Sequence[int] = (512, 256),
        dropout: float = 0.5,
        pooling: str = "max+mean",
        order: str = "conv_act_norm",
        norm: str | None = "batch",
        act: str | None = "relu",
        bias: bool = True,
        fusion_bias: bool = True,
    ) -> None:
        super().__init__()
        if pooling not in ("max+mean", "max", "mean"):
            raise ValueError(f"pooling must be 'max+mean', 'max' or 'mean', got {pooling!r}")
        self.pooling = pooling
        self.feature_channels = feature_channels
        kw = dict(order=order, norm=norm, act=act)
        self.fusion = Lin(feature_channels, fusion_channels, bias=fusion_bias, **kw)
        pooled = fusion_channels * (2 if pooling == "max+mean" else 1)
        widths = [pooled, *head_channels]
        self.layers = nn.ModuleList(
            Lin(c_in, c_out, bias=bias, **kw)
            for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(widths[-1], num_classes)

    def pool(self, fused: torch.Tensor) -> torch.Tensor:
        """(B, N, C) → (B, C) or (B, 2C) for max ‖ mean."""
        if self.pooling == "max":
            return fused.amax(dim=1)
        if self.pooling == "mean":
            return fused.mean(dim=1)
        return torch.cat([fused.amax(dim=1), fused.mean(dim=1)], dim=-1)

    def forward(self, feats: Features) -> torch.Tensor:
        """feats: (B, N, F) or its per-layer parts [(B, N, F_i)] (see `SegmentationHead`)."""
        parts = _parts(feats, self.feature_channels, "ClassificationHead")
        # Hidden layers run on (B, 1, C) so every channels-last norm (incl. instance) applies.
        h = pooled_fusion(self.fusion, parts, self.pool).unsqueeze(1)  # (B, 1, 2048)
        for layer in self.layers:
            h = self.dropout(layer(h))
        return self.classifier(h).squeeze(1)  # (B, classes)
