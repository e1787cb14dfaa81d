"""EdgeConv as one autograd node (`EdgeConvLayer`) for relu / leaky_relu / identity.

Step 4 of the algebra in `pointseg.nn.edge_conv`: the layer saves only its input x (alive anyway)
and the flat neighbour index; a and p are recomputed by two small matmuls in backward, ext and
the edge values chunk by chunk (`pointseg.nn.edge_extreme`). Memory per layer is O(B·N·C).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from pointseg.nn.edge_extreme import (
    extreme_stats_backward,
    extreme_stats_forward,
    single_threaded_ops,
)

# Activations the single-node layer (`EdgeConvLayer`) differentiates by hand.
LAYER_ACTS = ("relu", "leaky_relu", "none")


def _act(v: torch.Tensor, kind: str, slope: float) -> torch.Tensor:
    if kind == "relu":
        return v.clamp(min=0)
    if kind == "leaky_relu":
        # == where(v > 0, v, v·slope) bit for bit; torch.where with a bool mask is ~35x slower
        return F.leaky_relu(v, slope)
    return v


def _act_grad(grad: torch.Tensor, v: torch.Tensor, kind: str, slope: float) -> torch.Tensor:
    """grad · f'(v) for f = relu / leaky_relu / identity."""
    if kind == "none":
        return grad
    mask = torch.gt(v, 0, out=torch.empty_like(v))  # float 0/1
    if kind == "leaky_relu":
        mask = mask.mul_(1.0 - slope).add_(slope)
    return mask.mul_(grad)


class EdgeConvLayer(torch.autograd.Function):
    """A whole fused EdgeConv layer (Linear + BN + relu/leaky_relu/identity + max) in one node.

    Saves only the layer input x (alive anyway as the previous layer's output), the flat index
    and per-channel vectors; a and p are recomputed in backward by two small matmuls, ext and the
    edge values chunk by chunk. cfg = (order, act, slope, has_norm, batch_stats,
    eps). Returns out (R, C_out) and the batch mean / biased var (for the running statistics;
    empty when not computed).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, gamma, beta, fidx, running_mean, running_var, cfg):  # type: ignore[override]
        with single_threaded_ops() as workers:
            return EdgeConvLayer._forward(
                ctx, workers, x, weight, bias, gamma, beta, fidx, running_mean, running_var, cfg
            )

    @staticmethod
    def _forward(ctx, workers, x, weight, bias, gamma, beta, fidx, running_mean, running_var, cfg):
        order, act, slope, has_norm, batch_stats, eps, total = cfg
        c = x.shape[1]
        w_a, w_p = weight[:, :c] - weight[:, c:], weight[:, c:]  # (C_out, C) each
        a = F.linear(x, w_a, bias)  # (R, C_out): (W₁ − W₂) h_i + b
        p = F.linear(x, w_p)  # (R, C_out): W₂ h_j
        stats = 0
        if has_norm and batch_stats:
            stats = 2 if order == "conv_act_norm" and act != "none" else 1
        # BN scale γ/√(var+eps) has the sign of γ: take the min over neighbours where it is < 0.
        sgn = None
        if has_norm and gamma is not None:
            sgn = torch.where(gamma >= 0, 1.0, -1.0).to(p.dtype)
        ext, mean, var = extreme_stats_forward(
            a, p, fidx, sgn, stats, slope, workers, total=total if stats else None
        )
        u = a.add_(ext)  # (R, C_out): a_i + ext_j p_j
        inv = None
        if has_norm:
            if not batch_stats:
                mean, var = running_mean, running_var
            inv = torch.rsqrt(var + eps)  # (C_out,)
            scale = inv * gamma if gamma is not None else inv
            shift = -mean * scale
            if beta is not None:
                shift = shift + beta
            if order == "conv_norm_act":
                out = _act(u.mul_(scale).add_(shift), act, slope)
            else:
                out = _act(u, act, slope).mul_(scale).add_(shift)
        else:
            out = _act(u, act, slope)
        # ext is not saved: recomputing it (one gather + amax per chunk) costs less than keeping
        # B·N·C floats per layer alive until backward.
        ctx.save_for_backward(x, weight, bias, gamma, beta, fidx, mean, inv)
        ctx.cfg = cfg
        if stats:
            mean_out, var_out = mean.detach().clone(), var.detach().clone()
        else:
            mean_out = var_out = x.new_empty(0)
        ctx.mark_non_differentiable(mean_out, var_out)
        return out, mean_out, var_out

    @staticmethod
    def backward(ctx, grad, _g_mean, _g_var):  # type: ignore[override]
        with single_threaded_ops() as workers:
            return EdgeConvLayer._backward(ctx, workers, grad)

    @staticmethod
    def _backward(ctx, workers, grad):
        x, weight, bias, gamma, beta, fidx, mean, inv = ctx.saved_tensors
        order, act, slope, has_norm, batch_stats, eps, total = ctx.cfg
        c = x.shape[1]
        w_a, w_p = weight[:, :c] - weight[:, c:], weight[:, c:]
        a = F.linear(x, w_a, bias)  # recomputed (R, C_out)
        p = F.linear(x, w_p)
        sgn = None
        if has_norm and gamma is not None:
            sgn = torch.where(gamma >= 0, 1.0, -1.0).to(p.dtype)
        ext = extreme_stats_forward(a, p, fidx, sgn, 0, 0.0, workers)[0]  # (R, C_out)
        u = a + ext
        g_gamma = g_beta = g_mean = g_var = None
        stats = 0
        if has_norm:
            scale = inv * gamma if gamma is not None else inv
            if order == "conv_norm_act":
                shift = -mean * scale
                if beta is not None:
                    shift = shift + beta
                dv = _act_grad(grad, u * scale + shift, act, slope)  # (R, C_out)
                g_scale_direct = (dv * u).sum(0)
                g_shift = dv.sum(0)
                du = dv * scale
            else:
                q = _act(u, act, slope)
                g_scale_direct = (grad * q).sum(0)
                g_shift = grad.sum(0)
                du = _act_grad(grad * scale, u, act, slope)
            # shift = β − mean · scale, scale = γ · inv, inv = (var + eps)^(-1/2)
            g_scale = g_scale_direct - g_shift * mean
            if gamma is not None:
                g_gamma = g_scale * inv
                g_inv = g_scale * gamma
            else:
                g_inv = g_scale
            g_beta = g_shift if beta is not None else None
            if batch_stats:
                stats = 2 if order == "conv_act_norm" and act != "none" else 1
                g_mean = -g_shift * scale
                g_var = g_inv * (-0.5) * inv.pow(3)
                if total is not None:
                    # Synchronised BN: the shared mean / var receive every rank's loss gradient
                    # (what nn.SyncBatchNorm's backward all-reduces too).
                    g = torch.cat([g_mean, g_var])
                    torch.distributed.all_reduce(g)
                    g_mean, g_var = g[: g_mean.numel()], g[g_mean.numel() :]
        else:
            du = _act_grad(grad, u, act, slope)
        grad_a_stats, grad_p = extreme_stats_backward(
            a,
            p,
            fidx,
            ext,
            mean,
            du,
            g_mean,
            g_var,
            stats,
            slope,
            workers,
            total=total if stats else None,
        )
        grad_a = du if grad_a_stats is None else du + grad_a_stats
        grad_x = grad_a @ w_a + grad_p @ w_p if ctx.needs_input_grad[0] else None  # (R, C)
        g_wa, g_wp = grad_a.t() @ x, grad_p.t() @ x  # (C_out, C)
        grad_weight = torch.cat([g_wa, g_wp - g_wa], dim=1)  # W₁ = W_a + W_p, W₂ = W_p
        grad_bias = grad_a.sum(0) if bias is not None else None
        return grad_x, grad_weight, grad_bias, g_gamma, g_beta, None, None, None, None
