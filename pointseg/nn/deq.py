"""Deep equilibrium graph layer (DEQ-GCN): the limit of infinitely many weight-tied layers.

The output is the fixed point Z* = f(Z*; X, A) of one graph cell f (Bai et al., "Deep Equilibrium
Models", NeurIPS 2019; the DEQ-GNN of RevGNN, Li et al., ICML 2021):

- **forward** solves it under ``no_grad`` with fixed-point iteration (Z ← f(Z)) or Anderson
  acceleration (Walker & Ni 2011; history m, ridge λ), from Z = 0, until the relative residual
  ‖f(Z) − Z‖ / ‖f(Z)‖ ≤ ``tol`` or ``max_iter`` evaluations. The residual reached, the iteration
  count and convergence are kept in ``last_info`` and a solve that does not converge warns
  (`DEQConvergenceWarning`) with the residual it reached, never silently.
- **backward** is implicit differentiation: for the incoming gradient v it solves the adjoint
  system g = J_f(Z*)ᵀ g + v with the same solver (each step one vector-Jacobian product through
  one retained application of f at Z*), then propagates g through ∂f/∂X and ∂f/∂θ. No solver
  iterate is stored for autograd: memory is two applications of f, whatever the iteration count.

Graphs: A is fixed for the whole solve. On dense point clouds the caller builds it from the input
features X (the DEQ cannot rebuild a kNN graph from Z without making the map discontinuous and the
fixed point ill-posed); on sparse graphs it is the given edge_index.

f must not hold BatchNorm (batch statistics change with every iterate, so the fixed point would
not be one function); `DEQCell` uses no norm. Contraction is not enforced: `DEQCell` starts
contractive (its conv weights are scaled to spectral norm ``contraction``) and the warning says
when training has made the solve fail.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from pointseg.nn.mlp import create_act

__all__ = [
    "DEQ",
    "DEQCell",
    "DEQConvergenceWarning",
    "SolverInfo",
    "SOLVERS",
    "anderson",
    "fixed_point_iteration",
]


class DEQConvergenceWarning(RuntimeWarning):
    """A DEQ solve stopped at its iteration cap with the residual above its tolerance."""


@dataclass
class SolverInfo:
    iterations: int
    residual: float  # relative: ‖f(z) − z‖ / ‖f(z)‖ of the returned z
    converged: bool


Fn = Callable[[torch.Tensor], torch.Tensor]


def _rel(fz: torch.Tensor, z: torch.Tensor) -> float:
    return float((fz - z).norm() / (fz.norm() + 1e-12))


def fixed_point_iteration(
    f: Fn, z0: torch.Tensor, *, tol: float = 1e-4, max_iter: int = 50
) -> tuple[torch.Tensor, SolverInfo]:
    """Z ← f(Z) until ‖f(Z) − Z‖ / ‖f(Z)‖ ≤ tol or max_iter evaluations; returns f(Z), info."""
    z = z0
    res = float("inf")
    for it in range(1, max_iter + 1):
        fz = f(z)
        res = _rel(fz, z)
        z = fz
        if res <= tol:
            return z, SolverInfo(it, res, True)
    return z, SolverInfo(max_iter, res, False)


def anderson(
    f: Fn,
    z0: torch.Tensor,
    *,
    tol: float = 1e-4,
    max_iter: int = 50,
    m: int = 5,
    lam: float = 1e-4,
    beta: float = 1.0,
) -> tuple[torch.Tensor, SolverInfo]:
    """Anderson acceleration of Z ← f(Z) (type II, history m, relative ridge lam, mixing beta).

    Each step mixes the last n ≤ m iterates with weights α minimising ‖Σ α_j (f(Z_j) − Z_j)‖²
    subject to Σ α_j = 1 (a small bordered least-squares system). Returns f(Z) of the iterate Z
    with the lowest residual, and that residual. The whole tensor is one vector (one residual for the batch).
    """
    shape, dtype = z0.shape, z0.dtype
    dim = z0.numel()
    X = z0.new_zeros(m, dim)  # (m, D) iterates
    F = z0.new_zeros(m, dim)  # (m, D) their images f(X)
    X[0] = z0.reshape(-1)
    F[0] = f(z0).reshape(-1)
    best = (_rel(F[0], X[0]), F[0].clone(), 1)
    if best[0] <= tol or max_iter <= 1:
        return best[1].view(shape), SolverInfo(1, best[0], best[0] <= tol)
    X[1] = F[0]
    F[1] = f(F[0].view(shape)).reshape(-1)
    res = _rel(F[1], X[1])
    if res < best[0]:
        best = (res, F[1].clone(), 2)
    H = z0.new_zeros(m + 1, m + 1, dtype=torch.float64)
    H[0, 1:] = H[1:, 0] = 1.0
    rhs = torch.zeros(m + 1, 1, dtype=torch.float64, device=z0.device)
    rhs[0] = 1.0
    it = 2
    while best[0] > tol and it < max_iter:
        n = min(it, m)
        G = (F[:n] - X[:n]).double()  # (n, D) residuals
        GG = G @ G.T
        # ridge relative to the residual scale: an absolute λ would swamp GGᵀ near convergence
        ridge = lam * float(GG.diagonal().max()) + 1e-300
        H[1 : n + 1, 1 : n + 1] = GG + ridge * torch.eye(n, dtype=torch.float64, device=G.device)
        alpha = torch.linalg.solve(H[: n + 1, : n + 1], rhs[: n + 1])[1 : n + 1, 0].to(dtype)
        j = it % m
        X[j] = beta * (alpha @ F[:n]) + (1 - beta) * (alpha @ X[:n])
        F[j] = f(X[j].view(shape)).reshape(-1)
        it += 1
        res = _rel(F[j], X[j])
        if res < best[0]:
            best = (res, F[j].clone(), it)
    return best[1].view(shape), SolverInfo(it, best[0], best[0] <= tol)


SOLVERS = {"fixed_point": fixed_point_iteration, "anderson": anderson}


class DEQCell(nn.Module):
    """f(Z; X, A) = act(conv(Z, A) + X): one graph conv with input injection.

    ``conv(h, graph)`` keeps the channel count and should carry no BatchNorm (e.g.
    ``EdgeConv(C, C, norm=None, act=None)``). ``reset_parameters`` scales every weight matrix of
    the conv to spectral norm ``contraction`` so that the map starts contractive.
    """

    def __init__(self, conv: nn.Module, act: str | None = "relu", contraction: float = 0.5) -> None:
        super().__init__()
        for m in conv.modules():
            if isinstance(m, nn.modules.batchnorm._NormBase):
                raise ValueError(
                    "DEQCell: the conv must not hold BatchNorm (its statistics would change with "
                    "every solver iterate); build it with norm=None or LayerNorm"
                )
        self.conv = conv
        self.act = create_act(act)
        self.contraction = float(contraction)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        if hasattr(self.conv, "reset_parameters"):
            self.conv.reset_parameters()
        self.rescale()

    @torch.no_grad()
    def rescale(self) -> None:
        """Scale each conv weight matrix to spectral norm `contraction` / (its count)."""
        weights = [p for n, p in self.conv.named_parameters() if p.dim() == 2 and "weight" in n]
        for w in weights:
            if w.is_meta:
                return
            w.mul_(
                self.contraction
                / len(weights)
                / torch.linalg.matrix_norm(w, ord=2).clamp(min=1e-12)
            )

    def forward(self, z: torch.Tensor, x: torch.Tensor, graph) -> torch.Tensor:
        return self.act(self.conv(z, graph) + x)


class DEQ(nn.Module):
    """Z* = f(Z*; X, A) with a fixed-point solver forward and implicit differentiation backward.

    Args:
        cell: ``cell(z, x, graph) -> z'`` (e.g. `DEQCell`), z and x of the same shape.
        solver: "anderson" or "fixed_point".
        tol, max_iter: relative residual target and iteration cap of the forward solve.
        backward_tol, backward_max_iter: the same for the adjoint solve (default: forward's).
        anderson_m: Anderson history size.

    ``forward(x, graph) -> z*``; ``last_info`` / ``last_backward_info`` hold `SolverInfo`.
    """

    def __init__(
        self,
        cell: nn.Module,
        *,
        solver: str = "anderson",
        tol: float = 1e-4,
        max_iter: int = 50,
        backward_tol: float | None = None,
        backward_max_iter: int | None = None,
        anderson_m: int = 5,
    ) -> None:
        super().__init__()
        if solver not in SOLVERS:
            raise ValueError(f"DEQ: unknown solver {solver!r}; valid: {sorted(SOLVERS)}")
        if not tol > 0 or int(max_iter) < 1:
            raise ValueError(
                f"DEQ: need tol > 0 and max_iter >= 1; got tol={tol}, max_iter={max_iter}"
            )
        self.cell = cell
        self.solver = solver
        self.tol, self.max_iter = float(tol), int(max_iter)
        self.backward_tol = self.tol if backward_tol is None else float(backward_tol)
        self.backward_max_iter = (
            self.max_iter if backward_max_iter is None else int(backward_max_iter)
        )
        self.anderson_m = int(anderson_m)
        self.last_info: SolverInfo | None = None
        self.last_backward_info: SolverInfo | None = None

    def _solve(self, f: Fn, z0: torch.Tensor, tol: float, max_iter: int, what: str):
        kw = {"m": self.anderson_m} if self.solver == "anderson" else {}
        z, info = SOLVERS[self.solver](f, z0, tol=tol, max_iter=max_iter, **kw)
        if not info.converged:
            warnings.warn(
                f"DEQ {what} solve ({self.solver}) did not converge: relative residual "
                f"{info.residual:.3e} > tol {tol:.1e} after {info.iterations} iterations; "
                "raise max_iter, loosen tol, or lower the cell's contraction",
                DEQConvergenceWarning,
                stacklevel=3,
            )
        return z, info

    def forward(self, x: torch.Tensor, graph=None) -> torch.Tensor:
        with torch.no_grad():
            z, self.last_info = self._solve(
                lambda z: self.cell(z, x, graph),
                torch.zeros_like(x),
                self.tol,
                self.max_iter,
                "forward",
            )
        needs_grad = torch.is_grad_enabled() and (
            x.requires_grad or any(p.requires_grad for p in self.parameters())
        )
        if not needs_grad:
            return z
        # One differentiable application at z* links the output to x and θ; a second one, on a
        # detached copy, gives the adjoint solve its vector-Jacobian products (J_f(z*)ᵀ g).
        out = self.cell(z.detach(), x, graph)
        z_in = z.detach().requires_grad_(True)
        f_in = self.cell(z_in, x, graph)

        def implicit(grad: torch.Tensor) -> torch.Tensor:
            # g = J_f(z*)ᵀ g + grad, then autograd carries g through ∂f/∂x and ∂f/∂θ of `out`.
            def step(g: torch.Tensor) -> torch.Tensor:
                return torch.autograd.grad(f_in, z_in, g, retain_graph=True)[0] + grad

            g, self.last_backward_info = self._solve(
                step, torch.zeros_like(grad), self.backward_tol, self.backward_max_iter, "backward"
            )
            return g

        out.register_hook(implicit)
        return out

    def extra_repr(self) -> str:
        return f"solver={self.solver}, tol={self.tol}, max_iter={self.max_iter}"
