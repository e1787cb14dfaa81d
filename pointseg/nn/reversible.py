"""Grouped reversible residual GCNs (RevGNN, Li et al., "Training Graph Neural Networks with 1000
Layers", ICML 2021) on dense dynamic kNN graphs and on sparse (PyG ``edge_index``) graphs.

A grouped reversible block splits its input channels into G ≥ 2 groups X_1..X_G and computes

    X'_0 = Σ_{i≥2} X_i,        X'_i = F_i(X'_{i−1}, A_i) + X_i        (i = 1..G)

with one function module F_i per group (independently initialised copies). Its exact inverse is

    X_i = X'_i − F_i(X'_{i−1}, A_i)  for i = G..2,    X'_0 = Σ_{i≥2} X_i,    X_1 = X'_1 − F_1(X'_0, A_1).

`RevGCN` runs L such blocks as ONE autograd node (`_RevStack`): forward runs under ``no_grad`` and
keeps only the stack's output; backward walks the blocks from the last to the first, rebuilds each
block's input from its output with the inverse, recomputes the block with autograd and
differentiates it. No block input survives the forward, so activation memory is O(N·D) whatever L
(measured in ``benchmarks/memory_depth.py``). Each block's parameter gradients are added to
``p.grad`` as soon as that block is differentiated (``accumulate_grads=True``, the default, as in
``torch.utils.checkpoint(use_reentrant=True)``): the parameters are not inputs of the node, so a
step creates no per-parameter autograd state and never holds all L layers' gradients besides
``p.grad``; ``accumulate_grads=False`` returns them through autograd (for
``torch.autograd.grad``), and so does a weight-tied stack (one block's gradients). The per-forward record (ranks, checksums) is a few fixed-size tensors,
not per-layer Python objects, so nothing in a step grows with depth but the parameters.

Graphs. Each F_i gets a graph A_i:
- **static** (dense ``idx (B, N, k)`` or sparse ``edge_index (2, E)``, anything the F modules take):
  passed to ``forward`` and handed unchanged to every F_i of every block.
- **dense dynamic** (``dilations`` given): A_i is the dilated kNN graph of F_i's own input X'_{i−1}
  (B, N, C/G), rebuilt in backward from the reconstructed input. Why F_i's input and not the block
  input: the inverse needs A_i before the block input exists again, and F_i's input is available
  first (X'_{i−1} is an output for i ≥ 2, and X'_0 is summed from the X_i just recovered).
  The stochastic-dilation choices (the ranks of `pointseg.graph.select_ranks`, k int64 per graph)
  are drawn once per forward and replayed with `pointseg.graph.knn_ranks`; the graphs themselves
  are not stored. Every forward graph's checksum (`graph_checksum`, one int) is kept and compared
  with the rebuilt graph: mismatches warn once per backward (or raise with
  ``on_mismatch="raise"``) naming the layers and groups, and are counted in ``graph_mismatches``.
  Only the last block's inputs are bit-exact: every other block's output is the next block's
  reconstructed input, so in float32 a neighbour at a near tie flips, the inverse below it then
  uses a different graph than the forward did, and the error compounds (measured at 28 layers,
  1024 points: 51 of 54 float32 graphs and 77% of their neighbour slots differ; float64: none).
  ``keep_graphs=True`` (the default) stores each graph as int16 (int32 beyond 32767
  points; N·k·2 bytes per group and layer) and never rebuilds: exact, memory O(L·N·k) — still far
  below ResGCN's per-layer activations. Static and sparse graphs are never rebuilt: always exact.

Dropout: one mask per forward (shape of one group, ``(…, C/G)``), shared by every F_i of every
layer and passed in as an input, so forward, inverse and recompute agree (RevGNN's SharedDropout).

Normalisation: F_i may hold BatchNorm. Its running statistics are updated by the forward only:
backward snapshots each block's buffers before the inverse / recompute and restores them after
(the recompute normalises with the same batch statistics as the forward, of the same input).

Plugging a conv in: any module ``conv(h, graph) -> (same shape as h)`` works as
``RevGraphFn(conv, norm, act)`` (F = conv(mask ⊙ act(norm(h)), graph)); dense pointseg convs take
``(B, N, C/G), idx (B, N, k)``, PyG convs take ``(N, C/G), edge_index``. See docs/reversible.md.
"""

from __future__ import annotations

import contextlib
import copy
import numbers
import warnings
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from pointseg.errors import PointsegError
from pointseg.graph.dilation import select_ranks
from pointseg.graph.knn import knn_ranks

__all__ = [
    "GraphMismatchError",
    "GraphMismatchWarning",
    "RevGraphFn",
    "GroupRevBlock",
    "RevGCN",
    "graph_checksum",
    "frozen_buffers",
    "shared_dropout_mask",
]

MISMATCH_ACTIONS = ("warn", "raise")


class GraphMismatchError(PointsegError, RuntimeError):
    """A graph rebuilt in backward differs from the one the forward used."""


class GraphMismatchWarning(RuntimeWarning):
    """A graph rebuilt in backward differs from the forward's (gradients are then approximate)."""


def graph_checksum(idx: torch.Tensor) -> int:
    """Order-sensitive checksum of neighbour indices (any shape): Σ_p idx[p]·w(p), w(p) ∈ [1, 65521].

    Any single changed index changes it (w(p) ≠ 0 and |Δidx| < 2⁶³ / 65521); so does a swap of two
    positions with different weights. Computed in int64 (wraps, deterministically, past 2⁶³)."""
    flat = idx.reshape(-1).long()
    w = torch.arange(flat.numel(), device=flat.device, dtype=torch.long).remainder_(65521).add_(1)
    return int((flat * w).sum())


@contextlib.contextmanager
def frozen_buffers(module: nn.Module) -> Iterator[None]:
    """Restore every buffer of `module` (BatchNorm running statistics, counters) on exit.

    Used around recomputations (reversible backward, gradient checkpointing) so running statistics
    are updated once per training step, by the forward, not again by the recompute."""
    saved = [(b, b.detach().clone()) for b in module.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, value in saved:
                b.copy_(value)


def shared_dropout_mask(
    like: torch.Tensor, p: float, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Inverted-dropout mask shaped like `like`: 0 with probability p, else 1 / (1 − p)."""
    keep = torch.empty_like(like).bernoulli_(1.0 - p, generator=generator)
    return keep.div_(1.0 - p)


class RevGraphFn(nn.Module):
    """One group function F(h, graph, mask) = conv(mask ⊙ act(norm(h)), graph).

    ``norm`` / ``act`` None skip those steps: ``RevGraphFn(EdgeConv(c, c))`` is the post-activation
    F of a ResGCN block (EdgeConv's own Conv → ReLU → BN), ``RevGraphFn(conv, norm, act)`` the
    pre-activation F of DeeperGCN / RevGNN (norm → act → dropout → conv). ``conv(h, graph)`` must
    keep the shape of h: dense (B, N, C) with idx (B, N, k), or sparse (N, C) with edge_index.
    """

    def __init__(
        self, conv: nn.Module, norm: nn.Module | None = None, act: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv = conv
        self.norm = norm
        self.act = act

    def reset_parameters(self) -> None:
        for m in (self.conv, self.norm):
            if m is not None and hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def forward(self, h: torch.Tensor, graph, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.norm is not None:
            h = self.norm(h)
        if self.act is not None:
            h = self.act(h)
        if mask is not None:
            h = h * mask
        return self.conv(h, graph)


GraphOf = Callable[[int, torch.Tensor], object]  # (group i, F_i input) -> graph for F_i


class GroupRevBlock(nn.Module):
    """Grouped reversible residual block: X'_i = F_i(X'_{i−1}, A_i) + X_i (module docstring).

    Args:
        fns: G ≥ 2 group functions, called ``fn(h, graph, mask)`` with h of C/G channels (e.g.
            `RevGraphFn`). Build them separately (independent initialisation) or use `from_fn`.

    ``forward(x, graph=None, mask=None)`` / ``inverse(y, graph=None, mask=None)`` with a static
    graph; `RevGCN` drives the dynamic-graph and memory-saving paths.
    """

    def __init__(self, fns: Sequence[nn.Module]) -> None:
        super().__init__()
        fns = list(fns)
        if len(fns) < 2:
            raise ValueError(f"GroupRevBlock needs G >= 2 group functions; got {len(fns)}")
        ids = {id(f) for f in fns}
        if len(ids) != len(fns):
            raise ValueError(
                "GroupRevBlock: the group functions must be distinct modules (independently "
                "initialised copies); got the same module more than once"
            )
        self.fns = nn.ModuleList(fns)

    @classmethod
    def from_fn(cls, fn: nn.Module, groups: int) -> GroupRevBlock:
        """G deep copies of `fn`, each re-initialised with ``reset_parameters()`` (never identical)."""
        if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 2:
            raise ValueError(f"GroupRevBlock.from_fn: groups must be an int >= 2; got {groups!r}")
        fns = [fn] + [copy.deepcopy(fn) for _ in range(groups - 1)]
        for f in fns[1:]:
            if not hasattr(f, "reset_parameters"):
                raise ValueError(
                    "GroupRevBlock.from_fn: fn needs reset_parameters() so that its copies start "
                    "from different weights"
                )
            f.reset_parameters()
        return cls(fns)

    @property
    def groups(self) -> int:
        return len(self.fns)

    def split(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[-1] % self.groups:
            raise ValueError(
                f"GroupRevBlock: {x.shape[-1]} channels do not split into {self.groups} equal "
                f"groups (x of shape {tuple(x.shape)})"
            )
        return list(x.chunk(self.groups, dim=-1))

    def forward_groups(
        self, xs: list[torch.Tensor], graph_of: GraphOf, mask: torch.Tensor | None
    ) -> list[torch.Tensor]:
        """[X_1..X_G] → [X'_1..X'_G]; ``graph_of(i, F_i input)`` gives each F_i's graph."""
        h = _sum(xs[1:])  # X'_0
        ys = []
        for i, fn in enumerate(self.fns):
            h = fn(h, graph_of(i, h), mask) + xs[i]
            ys.append(h)
        return ys

    def inverse_groups(
        self, ys: list[torch.Tensor], graph_of: GraphOf, mask: torch.Tensor | None
    ) -> list[torch.Tensor]:
        """[X'_1..X'_G] → [X_1..X_G] (exact up to float rounding); graphs are asked for in the
        order G..1, each from F_i's input (X'_{i−1}; X'_0 last, from the recovered groups)."""
        xs: list[torch.Tensor | None] = [None] * self.groups
        for i in range(self.groups - 1, 0, -1):
            xs[i] = ys[i] - self.fns[i](ys[i - 1], graph_of(i, ys[i - 1]), mask)
        h0 = _sum(xs[1:])
        xs[0] = ys[0] - self.fns[0](h0, graph_of(0, h0), mask)
        return xs

    def forward(
        self, x: torch.Tensor, graph=None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return torch.cat(self.forward_groups(self.split(x), lambda i, h: graph, mask), dim=-1)

    def inverse(
        self, y: torch.Tensor, graph=None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return torch.cat(self.inverse_groups(self.split(y), lambda i, h: graph, mask), dim=-1)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


def _sum(ts: list[torch.Tensor]) -> torch.Tensor:
    out = ts[0]
    for t in ts[1:]:
        out = out + t
    return out


class _Replay:
    """Per-forward record of a dynamic stack: ranks (drawn once), then checksums or kept graphs.

    Fixed-size tensors, allocated once per forward: the ranks (L, G, k), the checksums (L, G) and
    the backward's mismatch flags (L, G). Per-layer Python objects (a (k,) tensor, an int, a
    tuple per graph) would cost ~1.5 KB per layer of small allocations, more than their data
    (measured at 448 layers: the step's memory then grew with depth)."""

    def __init__(self, ranks: torch.Tensor, keep: bool, record: bool = False) -> None:
        self.ranks = ranks  # (layer, group, k) int64
        self.keep = keep
        layers, groups = ranks.shape[:2]
        self.checksums = torch.zeros(layers, groups, dtype=torch.long)
        self.mismatched = torch.zeros(layers, groups, dtype=torch.bool)
        self.graphs: list[list[torch.Tensor | None]] | None = (
            [[None] * groups for _ in range(layers)] if keep or record else None
        )


class RevGCN(nn.Module):
    """L grouped reversible blocks with O(N·D) activation memory (see module docstring).

    Args:
        blocks: one `GroupRevBlock` per layer. Weight tying: pass the same block L times (or one
            block and ``num_layers=L``); parameters are then those of one block, whatever L.
        num_layers: repeat a single block this many times (weight-tied).
        k, dilations: dense dynamic graphs: layer l's F_i use the dilated kNN graph (k neighbours,
            dilation ``dilations[l]``) of their own input. None: the graph passed to ``forward``
            (dense idx or sparse edge_index) is used by every F_i.
        stochastic, epsilon: stochastic dilation (training only) of the dynamic graphs.
        dropout: probability of the shared dropout mask (one per forward, training only).
        keep_graphs: store each dynamic graph (int16 / int32) instead of rebuilding it in
            backward (float32 rebuilds flip neighbours at near ties: see the module docstring).
        on_mismatch: "warn" or "raise" when a rebuilt graph differs from the forward's.
        memory_efficient: False runs the same computation with ordinary autograd (keeps every
            activation; the reference the reversible gradients are tested against).
        accumulate_grads: True (default): the backward accumulates each block's parameter
            gradients into ``p.grad`` as soon as that block is done (like
            ``torch.utils.checkpoint(use_reentrant=True)``), so only one block's gradients exist
            besides ``p.grad``. The stack is then for ``loss.backward()``:
            ``torch.autograd.grad(loss, params)`` gets no parameter gradients from it (it raises, or
            returns None with ``allow_unused``) and ``backward(inputs=...)`` still accumulates every
            parameter of the stack. False returns all parameter gradients through autograd at the
            end of the backward (works with ``torch.autograd.grad``; when ``p.grad`` already exists
            — gradient accumulation, ``zero_grad(set_to_none=False)`` — all L layers' gradients
            are then alive at once on top of it: one more copy of the parameters' bytes).
            Weight-tied stacks always return theirs (one block's, whatever L), so each parameter
            gets one gradient per backward (DDP refuses a parameter marked ready twice).

    ``forward(x, graph=None, return_graphs=False)``: x (…, C) → (…, C); with ``return_graphs``
    also returns the graphs used, ``[layer][group]`` (dynamic) — kept in memory, for inspection.
    """

    def __init__(
        self,
        blocks: Sequence[GroupRevBlock] | GroupRevBlock,
        *,
        num_layers: int | None = None,
        k: int | None = None,
        dilations: Sequence[int] | None = None,
        stochastic: bool = False,
        epsilon: float = 0.2,
        dropout: float = 0.0,
        keep_graphs: bool = True,
        on_mismatch: str = "warn",
        memory_efficient: bool = True,
        accumulate_grads: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(blocks, GroupRevBlock):
            if num_layers is None:
                raise ValueError(
                    "RevGCN: give num_layers when passing a single (weight-tied) block"
                )
            blocks = [blocks] * int(num_layers)
        blocks = list(blocks)
        if not blocks or not all(isinstance(b, GroupRevBlock) for b in blocks):
            raise ValueError("RevGCN: blocks must be a non-empty list of GroupRevBlock")
        if num_layers is not None and num_layers != len(blocks):
            raise ValueError(f"RevGCN: num_layers={num_layers} but {len(blocks)} blocks given")
        unique: list[GroupRevBlock] = []
        layer_block: list[int] = []
        for b in blocks:
            for j, u in enumerate(unique):
                if u is b:
                    layer_block.append(j)
                    break
            else:
                unique.append(b)
                layer_block.append(len(unique) - 1)
        self.blocks = nn.ModuleList(unique)
        self.layer_block = layer_block
        if len({b.groups for b in unique}) != 1:
            raise ValueError("RevGCN: every block must have the same number of groups")
        if dilations is not None:
            dilations = [int(d) for d in dilations]
            if len(dilations) != len(blocks):
                raise ValueError(
                    f"RevGCN: need one dilation per layer ({len(blocks)}); got {len(dilations)}"
                )
            if k is None or int(k) < 1 or any(d < 1 for d in dilations):
                raise ValueError(f"RevGCN: dynamic graphs need k >= 1 and dilations >= 1; k={k}")
        if on_mismatch not in MISMATCH_ACTIONS:
            raise ValueError(
                f"RevGCN: on_mismatch must be one of {MISMATCH_ACTIONS}; got {on_mismatch!r}"
            )
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"RevGCN: dropout must be in [0, 1); got {dropout!r}")
        self.k = None if k is None else int(k)
        self.dilations = dilations
        self.stochastic = bool(stochastic)
        self.epsilon = float(epsilon)
        self.dropout = float(dropout)
        self.keep_graphs = bool(keep_graphs)
        self.on_mismatch = on_mismatch
        self.memory_efficient = bool(memory_efficient)
        self.accumulate_grads = bool(accumulate_grads)
        self.graph_mismatches = 0  # rebuilt graphs that differed from the forward's, cumulative
        self._last_mismatched: torch.Tensor | None = None  # (layer, group) flags, last backward

    # ------------------------------------------------------------------ structure
    @property
    def num_layers(self) -> int:
        return len(self.layer_block)

    @property
    def accumulating(self) -> bool:
        """Whether the backward adds parameter gradients to ``p.grad`` itself: with
        ``accumulate_grads`` and untied blocks. A weight-tied stack returns its gradients (those of
        one block, whatever L: nothing depth-sized), so that each parameter gets one gradient per
        backward (DDP's hooks refuse a parameter marked ready twice)."""
        return self.accumulate_grads and not self.weight_tied

    @property
    def last_mismatches(self) -> list[tuple[int, int]]:
        """(layer, group) of the graphs the last backward rebuilt differently (0-based group)."""
        if self._last_mismatched is None:
            return []
        return [(int(lay), int(g)) for lay, g in self._last_mismatched.nonzero().tolist()]

    @property
    def groups(self) -> int:
        return self.blocks[0].groups

    @property
    def dynamic(self) -> bool:
        return self.dilations is not None

    @property
    def weight_tied(self) -> bool:
        return len(self.blocks) < self.num_layers

    def block(self, layer: int) -> GroupRevBlock:
        return self.blocks[self.layer_block[layer]]

    def extra_repr(self) -> str:
        graph = f"dynamic k={self.k}" if self.dynamic else "static"
        return (
            f"layers={self.num_layers}, groups={self.groups}, {graph}, tied={self.weight_tied}, "
            f"dropout={self.dropout}, keep_graphs={self.keep_graphs}"
        )

    # ------------------------------------------------------------------ graphs
    def draw_ranks(self) -> torch.Tensor:
        """The stochastic-dilation choices of one forward: (layer, group, k) int64 ranks."""
        out = torch.empty(self.num_layers, self.groups, self.k, dtype=torch.long)
        for layer, d in enumerate(self.dilations):
            for g in range(self.groups):
                out[layer, g] = select_ranks(
                    self.k, d, stochastic=self.stochastic, epsilon=self.epsilon,
                    training=self.training,
                )  # fmt: skip
        return out

    def build_graph(self, h: torch.Tensor, ranks: torch.Tensor) -> torch.Tensor:
        """Dense dilated kNN of a group input h (B, N, C/G) at the given ranks → (B, N, k)."""
        return knn_ranks(h.detach(), ranks)

    def _graph_of(self, layer: int, replay: _Replay | None, graph, phase: str) -> GraphOf:
        """graph_of(i, h) for layer `layer`; phase "forward" records, "backward" replays/checks."""
        if replay is None:
            return lambda i, h: graph

        def graph_of(i: int, h: torch.Tensor):
            if phase == "backward" and replay.keep:
                return replay.graphs[layer][i].long()
            idx = self.build_graph(h, replay.ranks[layer][i])
            if phase == "forward":
                if replay.keep:  # int16 while indices fit (N <= 32767), else int32
                    small = h.shape[-2] <= torch.iinfo(torch.int16).max
                    replay.graphs[layer][i] = idx.to(torch.int16 if small else torch.int32)
                else:
                    replay.checksums[layer, i] = graph_checksum(idx)
            elif phase == "backward":
                if graph_checksum(idx) != int(replay.checksums[layer, i]):
                    self._mismatch(layer, i, replay)
            else:  # "record": ordinary autograd / eval, keep the int64 graphs for the caller
                replay.graphs[layer][i] = idx
            return idx

        return graph_of

    def _mismatch(self, layer: int, group: int, replay: _Replay) -> None:
        self.graph_mismatches += 1
        replay.mismatched[layer, group] = True
        if self.on_mismatch == "raise":
            raise GraphMismatchError(
                f"RevGCN: the kNN graph of layer {layer}, group {group + 1} rebuilt in backward "
                "from the reconstructed input differs from the forward's (float rounding flipped "
                "a neighbour at a near tie). Set keep_graphs=True (graphs kept, exact) or "
                "on_mismatch='warn' (gradients then use the rebuilt graph)."
            )

    def _report_mismatches(self) -> None:
        """One warning per backward naming how many graphs differed, and the first ones."""
        if self._last_mismatched is None or not bool(self._last_mismatched.any()):
            return
        found = self.last_mismatches
        if not found:
            return
        first = ", ".join(f"layer {lay} group {g + 1}" for lay, g in found[:4])
        warnings.warn(
            f"RevGCN: {len(found)} of {self.num_layers * self.groups} kNN graphs rebuilt in "
            f"backward from the reconstructed inputs differ from the forward's ({first}"
            f"{', …' if len(found) > 4 else ''}): float rounding of the reconstruction flipped "
            "neighbours at near ties, and the inverse and gradients below them used the rebuilt "
            "graphs, so errors compound with depth. keep_graphs=True keeps the graphs instead "
            "(exact; int16 indices, N·k·2 bytes per group and layer); float64 makes flips rare.",
            GraphMismatchWarning,
            stacklevel=3,
        )

    # ------------------------------------------------------------------ forward
    def make_mask(self, x: torch.Tensor) -> torch.Tensor | None:
        if not (self.training and self.dropout > 0):
            return None
        group = x.shape[-1] // self.groups
        return shared_dropout_mask(x[..., :group], self.dropout)

    def forward(self, x: torch.Tensor, graph=None, return_graphs: bool = False):
        if self.dynamic and graph is not None:
            raise ValueError("RevGCN: this stack builds dynamic kNN graphs; do not pass a graph")
        if not self.dynamic and graph is None:
            raise ValueError("RevGCN: static stack (no dilations) needs a graph in forward")
        if x.shape[-1] % self.groups:
            raise ValueError(
                f"RevGCN: {x.shape[-1]} channels do not split into {self.groups} groups"
            )
        mask = self.make_mask(x)
        ranks = self.draw_ranks() if self.dynamic else None
        params = [p for p in self.parameters() if p.requires_grad]
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or bool(params))
        if self.memory_efficient and needs_grad and not return_graphs:
            replay = None if ranks is None else _Replay(ranks, self.keep_graphs)
            if self.accumulating:
                # The parameters are not inputs of the node (their gradients go to p.grad inside
                # its backward): as inputs, each would get an AccumulateGrad node for the step,
                # ~0.3 KB per parameter tensor (measured at 1001 layers). An empty leaf makes
                # the output require grad when x does not.
                anchor = () if x.requires_grad else (x.new_empty(0).requires_grad_(),)
                return _RevStack.apply(self, replay, graph, x, mask, *anchor)
            return _RevStack.apply(self, replay, graph, x, mask, *params)
        # Ordinary autograd (reference / eval / no grad): same ops, graphs kept when asked.
        replay = None if ranks is None else _Replay(ranks, False, record=True)
        h = x
        for layer in range(self.num_layers):
            block = self.block(layer)
            graph_of = self._graph_of(layer, replay, graph, "record")
            h = torch.cat(block.forward_groups(block.split(h), graph_of, mask), dim=-1)
        if not return_graphs:
            return h
        graphs = replay.graphs if replay is not None else [[graph] * self.groups] * self.num_layers
        return h, graphs

    # ------------------------------------------------------------------ the reversible pass
    def _forward_no_grad(self, x, mask, replay, graph) -> torch.Tensor:
        h = x
        for layer in range(self.num_layers):
            block = self.block(layer)
            graph_of = self._graph_of(layer, replay, graph, "forward")
            h = torch.cat(block.forward_groups(block.split(h), graph_of, mask), dim=-1)
        return h

    def _backward(self, y, dy, mask, replay, graph, params, accumulate: bool):
        """(dx, gradients of `params`, the node's extra inputs): with `accumulate` the
        extra inputs are not the parameters (at most an empty anchor, gradient None) and the
        parameters' gradients are added to ``p.grad`` block by block (never all layers' at once)."""
        grads: dict[int, torch.Tensor | None] = {} if accumulate else {id(p): None for p in params}
        self._last_mismatched = None if replay is None else replay.mismatched
        for layer in reversed(range(self.num_layers)):
            block = self.block(layer)
            graphs: list = [None] * block.groups

            def graph_of(i, h, _layer=layer, _graphs=graphs):
                _graphs[i] = self._graph_of(_layer, replay, graph, "backward")(i, h)
                return _graphs[i]

            with frozen_buffers(block):
                with torch.no_grad():  # inverse: this block's input, from its output
                    xs = block.inverse_groups(block.split(y), graph_of, mask)
                with torch.enable_grad():  # recompute with the very graphs, differentiate
                    x = torch.cat(xs, dim=-1).detach().requires_grad_(True)
                    ys = block.forward_groups(block.split(x), lambda i, h, _g=graphs: _g[i], mask)
                    bparams = [p for p in block.parameters() if p.requires_grad]
                    if accumulate:  # into x.grad and p.grad (in place once p.grad exists)
                        torch.autograd.backward(torch.cat(ys, dim=-1), dy, inputs=[x, *bparams])
                        out = (x.grad,)
                    else:
                        out = torch.autograd.grad(
                            torch.cat(ys, dim=-1), [x, *bparams], dy, allow_unused=True
                        )
            dy = out[0]
            if not accumulate:
                for p, g in zip(bparams, out[1:], strict=True):
                    if g is not None:
                        prev = grads[id(p)]
                        grads[id(p)] = g if prev is None else prev + g
            y = x.detach()
            del xs, ys, out, x
        self._report_mismatches()
        return dy, [grads.get(id(p)) for p in params]


class _RevStack(torch.autograd.Function):
    """y = RevGCN layers(x) saving only y (and the mask); backward inverts block by block.

    Extra inputs: the parameters (``accumulate_grads=False``: their gradients are returned), or
    none / an empty anchor (``accumulate_grads``: gradients go to ``p.grad`` in backward)."""

    @staticmethod
    def forward(ctx, stack: RevGCN, replay, graph, x, mask, *params):  # type: ignore[override]
        with torch.no_grad():
            y = stack._forward_no_grad(x, mask, replay, graph)
        ctx.stack, ctx.replay, ctx.graph = stack, replay, graph
        ctx.save_for_backward(y, mask)
        ctx.params = params
        ctx.accumulate = stack.accumulating  # as decided in RevGCN.forward
        return y

    @staticmethod
    def backward(ctx, dy):  # type: ignore[override]
        y, mask = ctx.saved_tensors
        stack = ctx.stack
        dx, grads = stack._backward(y, dy, mask, ctx.replay, ctx.graph, ctx.params, ctx.accumulate)
        return None, None, None, dx, None, *grads
