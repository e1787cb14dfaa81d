"""DEQ graph layer: forward residual below tolerance (both solvers), implicit-differentiation
gradient equal to central finite differences in float64, non-convergence warns."""

from __future__ import annotations

import pytest
import torch

from pointseg.graph import dilated_knn
from pointseg.nn import EdgeConv, SAGEConv
from pointseg.nn.deq import DEQ, DEQCell, DEQConvergenceWarning, anderson, fixed_point_iteration


@pytest.fixture(autouse=True)
def _float64():
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(dtype)


def _deq(solver: str, tol: float = 1e-12, **kw) -> DEQ:
    torch.manual_seed(0)
    # mean aggregation + tanh: a smooth map, so finite differences are meaningful
    cell = DEQCell(SAGEConv(6, 6, aggr="mean", norm=None, act=None), act="tanh", contraction=0.6)
    cell.reset_parameters()
    return DEQ(cell, solver=solver, tol=tol, max_iter=200, **kw)


def _data(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 20, 6, generator=g)
    return x, dilated_knn(x, 4, 1)  # the graph is fixed from the input features for the solve


@pytest.mark.parametrize("solver", ["fixed_point", "anderson"])
def test_forward_residual_below_tolerance_and_is_a_fixed_point(solver):
    deq = _deq(solver, tol=1e-8)
    x, idx = _data()
    with torch.no_grad():
        z = deq(x, idx)
        info = deq.last_info
        resid = (deq.cell(z, x, idx) - z).norm() / deq.cell(z, x, idx).norm()
    print(f"{solver}: {info.iterations} iterations, residual {info.residual:.2e}")
    assert info.converged and info.residual <= 1e-8
    assert resid <= 1e-7


@pytest.mark.parametrize("solver", ["fixed_point", "anderson"])
def test_implicit_gradient_matches_finite_differences(solver):
    deq = _deq(solver)
    x, idx = _data()
    x.requires_grad_(True)
    w = torch.randn(2, 20, 6, generator=torch.Generator().manual_seed(2))
    (deq(x, idx) * w).sum().backward()
    assert deq.last_backward_info.converged
    weight = deq.cell.conv.lin_neigh.weight
    g = torch.Generator().manual_seed(3)
    errs = []
    with torch.no_grad():
        for t in (x, weight, deq.cell.conv.lin_root.bias):
            grad = t.grad.clone()
            for _ in range(4):
                i = tuple(int(torch.randint(0, s, (1,), generator=g)) for s in t.shape)
                t[i] += 1e-6
                plus = (deq(x, idx) * w).sum()
                t[i] -= 2e-6
                minus = (deq(x, idx) * w).sum()
                t[i] += 1e-6
                fd = (plus - minus) / 2e-6
                errs.append(float((fd - grad[i]).abs() / (fd.abs() + 1e-6)))
    print(f"{solver}: max relative error vs finite differences {max(errs):.1e}")
    assert max(errs) < 1e-6


def test_non_convergence_warns_with_the_residual():
    deq = _deq("fixed_point", tol=1e-12)
    deq.max_iter = 3
    x, idx = _data()
    with pytest.warns(DEQConvergenceWarning, match=r"residual .* after 3 iterations"):
        deq(x, idx)
    assert not deq.last_info.converged and deq.last_info.residual > 1e-12


def test_solvers_find_the_same_fixed_point_and_cell_rejects_batchnorm():
    A = torch.randn(30, 30, generator=torch.Generator().manual_seed(4))
    A = 0.9 * A / torch.linalg.matrix_norm(A, ord=2)
    b = torch.randn(30)

    def f(z):
        return A @ z + b

    exact = torch.linalg.solve(torch.eye(30) - A, b)
    z1, i1 = fixed_point_iteration(f, torch.zeros(30), tol=1e-12, max_iter=1000)
    z2, i2 = anderson(f, torch.zeros(30), tol=1e-12, max_iter=1000, m=6)
    torch.testing.assert_close(z1, exact, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(z2, exact, rtol=1e-9, atol=1e-9)
    assert i2.iterations < i1.iterations  # acceleration
    with pytest.raises(ValueError, match="must not hold BatchNorm"):
        DEQCell(EdgeConv(4, 4))
