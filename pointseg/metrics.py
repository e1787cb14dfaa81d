"""Confusion-matrix metrics for semantic segmentation and classification.

One `ConfusionMatrix` accumulates int64 counts ``M[t, p]`` = number of points with target class
``t`` predicted as ``p`` (rows = target, columns = prediction: scikit-learn's convention). Every
metric is a function of the matrix, so per-batch accumulation, per-room scoring and 6-fold pooling
(``cm_a + cm_b``: summed intersections and unions, DESIGN §4) all use the same code.

Definitions (per class c; TP = M[c, c], FN = row sum − TP, FP = column sum − TP):

- OA   = Σ_c TP_c / Σ M                          (overall accuracy)
- Acc_c = TP_c / (TP_c + FN_c)                    (recall; NaN when class c is absent from the target)
- mAcc = mean of Acc_c over classes present in the target
                                                  (= sklearn ``balanced_accuracy_score``)
- IoU_c = TP_c / (TP_c + FP_c + FN_c)             (NaN when TP + FP + FN = 0)
- mIoU = mean of IoU_c over classes with TP + FP + FN > 0, i.e. classes that occur in the target
  or in the prediction (= sklearn ``jaccard_score(average="macro", labels=<those classes>)``).
  A class that never occurs and is never predicted has an undefined IoU: it is excluded from the
  mean and shown as NaN / "—" in tables. A class present in the target but never predicted has
  IoU 0 and counts; a class predicted but absent from the target also has IoU 0 and counts.

- mIoU (GT classes) = mean of IoU_c over classes present in the *target* only. When a model
  predicts a class that a small test set does not contain (a converted Area-5 model scored on two
  rooms, say), that class has IoU 0 and drags mIoU down; this variant, the one most papers' tables
  on a single room use, leaves it out. Both are reported; mIoU is the headline.

Pooling over folds sums the matrices, which is *not* the mean of the per-fold mIoUs
(`mean_of_mious` gives the latter, for comparison only).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["ConfusionMatrix", "mean_of_mious"]


def _as_numpy(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype.kind not in "iub":
        if arr.dtype.kind == "f" and arr.size and np.all(np.mod(arr, 1) == 0):
            arr = arr.astype(np.int64)
        elif arr.size:
            raise ValueError(
                f"ConfusionMatrix.update: {name} must hold integer class ids; got dtype {arr.dtype}"
            )
    return arr.reshape(-1).astype(np.int64, copy=False)


class ConfusionMatrix:
    """Accumulating ``(num_classes, num_classes)`` int64 confusion matrix (rows target, cols pred).

    Args:
        num_classes: number of classes C; labels must lie in ``[0, C)``.
        ignore_index: target value to skip (e.g. 255 for unlabelled points); None keeps all.
        class_names: optional C names used by `as_dict` / report tables.

    ``update(pred, target)`` takes tensors or arrays of any matching shape (flattened);
    ``a + b`` pools two matrices (6-fold), ``sum([a, b, c])`` works too.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        ignore_index: int | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        if int(num_classes) < 1:
            raise ValueError(f"ConfusionMatrix: num_classes must be >= 1; got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        if class_names is not None and len(class_names) != self.num_classes:
            raise ValueError(
                f"ConfusionMatrix: {len(class_names)} class names given for {self.num_classes} classes"
            )
        self.class_names = list(class_names) if class_names is not None else None
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_matrix(
        cls,
        matrix: Any,
        *,
        class_names: Sequence[str] | None = None,
        ignore_index: int | None = None,
    ) -> ConfusionMatrix:
        """Wrap an existing (C, C) count matrix (e.g. read back from metrics.json / CSV)."""
        m = np.asarray(matrix)
        if m.ndim != 2 or m.shape[0] != m.shape[1]:
            raise ValueError(
                f"ConfusionMatrix.from_matrix: expected a square (C, C) matrix; got shape {m.shape}"
            )
        if m.size and (m.min() < 0 or np.any(np.mod(m, 1) != 0)):
            raise ValueError("ConfusionMatrix.from_matrix: counts must be non-negative integers")
        cm = cls(m.shape[0], class_names=class_names, ignore_index=ignore_index)
        cm.matrix = m.astype(np.int64).copy()
        return cm

    def update(self, pred: Any, target: Any) -> ConfusionMatrix:
        """Add the (pred, target) pairs; returns self. Raises ValueError on shape/range errors."""
        p = _as_numpy(pred, "pred")
        t = _as_numpy(target, "target")
        if p.shape != t.shape:
            raise ValueError(
                f"ConfusionMatrix.update: pred and target must have the same number of elements; "
                f"got {np.shape(pred)} and {np.shape(target)}"
            )
        if self.ignore_index is not None:
            keep = t != self.ignore_index
            p, t = p[keep], t[keep]
        if t.size == 0:
            return self
        c = self.num_classes
        for name, arr in (("target", t), ("pred", p)):
            lo, hi = int(arr.min()), int(arr.max())
            if lo < 0 or hi >= c:
                raise ValueError(
                    f"ConfusionMatrix.update: {name} values must be class ids in [0, {c}); "
                    f"got range [{lo}, {hi}]"
                )
        # One bincount over the flat index t*C + p: O(N), no (N, C) one-hot.
        self.matrix += np.bincount(t * c + p, minlength=c * c).reshape(c, c)
        return self

    def reset(self) -> None:
        self.matrix[:] = 0

    def copy(self) -> ConfusionMatrix:
        return ConfusionMatrix.from_matrix(
            self.matrix, class_names=self.class_names, ignore_index=self.ignore_index
        )

    def _check_compatible(self, other: ConfusionMatrix) -> None:
        if not isinstance(other, ConfusionMatrix):
            raise TypeError(f"cannot add ConfusionMatrix and {type(other).__name__}")
        if other.num_classes != self.num_classes:
            raise ValueError(
                f"cannot pool confusion matrices of {self.num_classes} and {other.num_classes} classes"
            )
        if self.class_names and other.class_names and self.class_names != other.class_names:
            raise ValueError(
                "cannot pool confusion matrices with different class names / order: "
                f"{self.class_names} vs {other.class_names}"
            )

    def __add__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        self._check_compatible(other)
        out = self.copy()
        out.class_names = self.class_names or other.class_names
        out.matrix += other.matrix
        return out

    def __radd__(self, other: Any) -> ConfusionMatrix:
        if isinstance(other, int) and other == 0:  # sum([...]) starts from 0
            return self.copy()
        return self.__add__(other)

    def __iadd__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        self._check_compatible(other)
        self.matrix += other.matrix
        self.class_names = self.class_names or other.class_names
        return self

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConfusionMatrix) and np.array_equal(self.matrix, other.matrix)

    def __repr__(self) -> str:
        return f"ConfusionMatrix(num_classes={self.num_classes}, total={self.total}, miou={self.miou():.4f})"

    # ------------------------------------------------------------------ counts
    @property
    def total(self) -> int:
        return int(self.matrix.sum())

    @property
    def tp(self) -> np.ndarray:
        return np.diag(self.matrix).copy()

    @property
    def support(self) -> np.ndarray:
        """Target count per class (row sums) = TP + FN."""
        return self.matrix.sum(axis=1)

    @property
    def predicted(self) -> np.ndarray:
        """Prediction count per class (column sums) = TP + FP."""
        return self.matrix.sum(axis=0)

    @property
    def fp(self) -> np.ndarray:
        return self.predicted - self.tp

    @property
    def fn(self) -> np.ndarray:
        return self.support - self.tp

    def intersection(self) -> np.ndarray:
        return self.tp

    def union(self) -> np.ndarray:
        """TP + FP + FN per class."""
        return self.support + self.predicted - self.tp

    # ------------------------------------------------------------------ metrics
    def oa(self) -> float:
        """Overall accuracy ΣTP / ΣN (NaN for an empty matrix)."""
        n = self.total
        return float(self.tp.sum() / n) if n else float("nan")

    def acc(self) -> np.ndarray:
        """Per-class accuracy (recall) TP / (TP + FN); NaN for classes absent from the target."""
        s = self.support
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(s > 0, self.tp / np.maximum(s, 1), np.nan)

    def macc(self) -> float:
        """Mean class accuracy over classes present in the target."""
        a = self.acc()
        return float(np.nanmean(a)) if np.any(~np.isnan(a)) else float("nan")

    def iou(self) -> np.ndarray:
        """Per-class IoU TP / (TP + FP + FN); NaN where the union is empty."""
        u = self.union()
        return np.where(u > 0, self.tp / np.maximum(u, 1), np.nan)

    def miou(self) -> float:
        """Mean IoU over classes with a non-empty union (see module docstring)."""
        i = self.iou()
        return float(np.nanmean(i)) if np.any(~np.isnan(i)) else float("nan")

    def miou_gt(self) -> float:
        """Mean IoU over classes present in the target (support > 0); see module docstring."""
        i = self.iou()[self.support > 0]
        return float(i.mean()) if i.size else float("nan")

    def present(self) -> np.ndarray:
        """Bool mask of classes counted in mIoU (TP + FP + FN > 0)."""
        return self.union() > 0

    def normalized(self) -> np.ndarray:
        """Row-normalised matrix (each target row sums to 1; rows of absent classes are 0)."""
        rows = self.support[:, None].astype(np.float64)
        return np.divide(self.matrix, rows, out=np.zeros(self.matrix.shape), where=rows > 0)

    def as_dict(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        """JSON-ready summary: OA, mAcc, mIoU, per-class rows keyed by name, the raw matrix.

        NaN values (undefined metrics) become None.
        """
        names = list(class_names or self.class_names or [str(i) for i in range(self.num_classes)])
        iou, acc = self.iou(), self.acc()
        inter, union, sup, pred = self.intersection(), self.union(), self.support, self.predicted

        def f(x: float) -> float | None:
            return None if np.isnan(x) else float(x)

        return {
            "oa": f(self.oa()),
            "macc": f(self.macc()),
            "miou": f(self.miou()),
            "points": self.total,
            "classes_in_miou": int(self.present().sum()),
            "miou_gt": f(self.miou_gt()),
            "classes_in_target": int((self.support > 0).sum()),
            "per_class": {
                names[c]: {
                    "iou": f(iou[c]),
                    "acc": f(acc[c]),
                    "intersection": int(inter[c]),
                    "union": int(union[c]),
                    "support": int(sup[c]),
                    "predicted": int(pred[c]),
                }
                for c in range(self.num_classes)
            },
            "confusion": self.matrix.tolist(),
        }


def mean_of_mious(matrices: Iterable[ConfusionMatrix]) -> float:
    """Mean of the per-matrix mIoUs — NOT the pooled 6-fold number; for comparison only."""
    vals = [m.miou() for m in matrices]
    return float(np.nanmean(vals)) if vals else float("nan")
