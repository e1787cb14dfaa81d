"""Neighbourhood aggregations for sparse message passing (DeeperGCN, Li et al., 2020).

Every aggregation maps messages ``m (E, C)`` grouped by their target node ``index (E,)`` to
``(N, C)``. Names (`AGGREGATIONS`):

- ``"softmax"``: SoftMax_Agg_β(m) = Σ_j softmax_j(β · m_j) · m_j, per channel. β is fixed or
  learnable and the computation is fully differentiable (gradients reach the messages through the
  weights as well); ``semi_grad=True`` computes the weights without gradient (the memory-saving
  variant of the DeeperGCN code) and is refused with a learnable β. As β → ∞ it tends to max,
  at β = 0 it is the mean. PyG's `SoftmaxAggregation` computes exactly this, so it is used as is.
- ``"powermean"``: PowerMean_Agg_p(m) = ((1/|N(i)|) Σ_j m_j^p)^{1/p} for positive messages, p fixed
  or learnable. Ours (`PowerMeanAggregation`) differs from PyG's on purpose: PyG clamps the
  messages and the result to [1e-4, 100] before the powers (so messages below 1e-4, which GENConv
  produces for every negative pre-activation, all become 1e-4, and values above 100 saturate with
  zero gradient). We evaluate it in log space instead,
  ``exp((logsumexp_j(p · log m_j) − log |N(i)|) / p)``, which never overflows for large p, needs
  no clamping (in place or otherwise) and is exact wherever PyG's clamp is inactive (tested).
- ``"sum"`` / ``"add"``, ``"mean"``, ``"max"``: PyG's basic aggregations.

Nodes without incoming messages get 0 for every aggregation, as in PyG.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import aggr as pyg_aggr
from torch_geometric.utils import scatter

AGGREGATIONS = ("softmax", "powermean", "sum", "mean", "max")


class PowerMeanAggregation(pyg_aggr.Aggregation):
    r"""Power mean :math:`(\frac{1}{|N(i)|}\sum_j m_j^p)^{1/p}` of positive messages, in log space.

    ``p`` is a float or, with ``learn=True``, a parameter (one value, or one per channel with
    ``channels > 1``). Messages must be positive (GENConv's are ReLU(·) + ε); p must stay non-zero.
    Shapes: ``x (E, C)``, ``index (E,)`` → ``(dim_size, C)``.
    """

    def __init__(self, p: float = 1.0, learn: bool = False, channels: int = 1) -> None:
        super().__init__()
        if not learn and channels != 1:
            raise ValueError("PowerMeanAggregation: channels > 1 needs learn=True")
        if p == 0:
            raise ValueError(
                "PowerMeanAggregation: p must be non-zero (p → 0 is the geometric mean)"
            )
        self._init_p = float(p)
        self.learn = learn
        self.channels = channels
        self.p = nn.Parameter(torch.empty(channels)) if learn else float(p)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if isinstance(self.p, Tensor):
            self.p.data.fill_(self._init_p)

    def forward(
        self,
        x: Tensor,
        index: Tensor | None = None,
        ptr: Tensor | None = None,
        dim_size: int | None = None,
        dim: int = -2,
    ) -> Tensor:
        if index is None:
            raise ValueError("PowerMeanAggregation needs the target index of every message")
        if x.dim() != 2 or dim not in (0, -2):
            raise ValueError(f"PowerMeanAggregation expects messages (E, C), got {tuple(x.shape)}")
        p = self.p.view(1, -1) if isinstance(self.p, Tensor) else self.p
        n = int(dim_size) if dim_size is not None else int(index.max()) + 1 if index.numel() else 0
        y = torch.log(x) * p  # (E, C): log m^p
        # logsumexp per target: shift by the (detached) per-target max so exp never overflows.
        with torch.no_grad():
            shift = scatter(y, index, dim=0, dim_size=n, reduce="max")  # (N, C)
            shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
        s = scatter(torch.exp(y - shift[index]), index, dim=0, dim_size=n, reduce="sum")  # (N, C)
        deg = torch.bincount(index, minlength=n).to(x.dtype).view(-1, 1)  # (N, 1)
        has = deg > 0
        log_mean = (
            torch.log(torch.where(has, s, torch.ones_like(s))) + shift - torch.log(deg.clamp(min=1))
        )
        out = torch.exp(log_mean / p)
        return torch.where(has, out, torch.zeros_like(out))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(p={self._init_p}, learn={self.learn})"


def create_aggregation(
    name: str,
    *,
    t: float = 1.0,
    learn_t: bool = False,
    semi_grad: bool = False,
    p: float = 1.0,
    learn_p: bool = False,
) -> pyg_aggr.Aggregation:
    """Build aggregation `name` (see `AGGREGATIONS`); unknown names list the valid ones."""
    name = {"add": "sum", "power": "powermean", "softmax_sg": "softmax"}.get(name, name)
    if name == "softmax":
        if learn_t and semi_grad:
            raise ValueError("softmax aggregation: semi_grad cannot be used with a learnable t")
        return pyg_aggr.SoftmaxAggregation(t=t, learn=learn_t, semi_grad=semi_grad)
    if name == "powermean":
        return PowerMeanAggregation(p=p, learn=learn_p)
    if name == "sum":
        return pyg_aggr.SumAggregation()
    if name == "mean":
        return pyg_aggr.MeanAggregation()
    if name == "max":
        return pyg_aggr.MaxAggregation()
    raise ValueError(f"unknown aggregation {name!r}; valid names: {list(AGGREGATIONS)}")
