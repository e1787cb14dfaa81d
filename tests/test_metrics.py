"""pointseg.metrics: ConfusionMatrix against scikit-learn, pooling vs averaging."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, jaccard_score

from pointseg.metrics import ConfusionMatrix, mean_of_mious


def _sk_reference(pred: np.ndarray, target: np.ndarray, c: int) -> dict:
    present = np.union1d(np.unique(pred), np.unique(target))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about absent classes; that is the point
        return {
            "matrix": confusion_matrix(target, pred, labels=np.arange(c)),
            "iou_present": jaccard_score(target, pred, labels=present, average=None),
            "miou": jaccard_score(target, pred, labels=present, average="macro"),
            "macc": balanced_accuracy_score(target, pred),
            "oa": float(np.mean(pred == target)),
            "present": present,
        }


@pytest.mark.parametrize("seed", range(6))
def test_matches_sklearn_random_labels(seed):
    rng = np.random.default_rng(seed)
    c = 13
    n = int(rng.integers(50, 3000))
    # Skewed label distribution; drop some classes from the target and others from the predictions
    # so "absent from the room" and "never predicted" both occur.
    absent_target = rng.choice(c, size=3, replace=False)
    never_pred = rng.choice(c, size=3, replace=False)
    t_classes = np.setdiff1d(np.arange(c), absent_target)
    p_classes = np.setdiff1d(np.arange(c), never_pred)
    target = rng.choice(t_classes, size=n, p=rng.dirichlet(np.ones(len(t_classes))))
    pred = np.where(rng.random(n) < 0.6, target, rng.choice(p_classes, size=n))
    pred = np.where(np.isin(pred, never_pred), p_classes[0], pred)

    cm = ConfusionMatrix(c)
    # Feed in uneven chunks, mixing torch and numpy inputs: accumulation must not matter.
    cuts = np.sort(rng.integers(0, n, size=4))
    for i, (a, b) in enumerate(zip(np.r_[0, cuts], np.r_[cuts, n], strict=True)):
        p, t = pred[a:b], target[a:b]
        cm.update(torch.from_numpy(p) if i % 2 else p, torch.from_numpy(t) if i % 2 else t)

    ref = _sk_reference(pred, target, c)
    np.testing.assert_array_equal(cm.matrix, ref["matrix"])
    assert cm.matrix.dtype == np.int64
    assert cm.oa() == pytest.approx(ref["oa"], abs=1e-12)
    assert cm.macc() == pytest.approx(ref["macc"], abs=1e-12)
    assert cm.miou() == pytest.approx(ref["miou"], abs=1e-12)
    np.testing.assert_allclose(cm.iou()[ref["present"]], ref["iou_present"], atol=1e-12)
    # Classes neither in target nor predicted: NaN (excluded), exactly where sklearn is undefined.
    np.testing.assert_array_equal(np.isnan(cm.iou()), ~np.isin(np.arange(c), ref["present"]))
    np.testing.assert_array_equal(cm.present(), np.isin(np.arange(c), ref["present"]))


def test_absent_and_never_predicted_classes_by_hand():
    # class 0: present, predicted right; class 1: present, never predicted; class 2: predicted
    # but absent from the target; class 3: neither -> excluded (NaN).
    target = np.array([0, 0, 1, 1])
    pred = np.array([0, 0, 2, 0])
    cm = ConfusionMatrix(4).update(pred, target)
    iou = cm.iou()
    assert iou[0] == pytest.approx(2 / 3)
    assert iou[1] == 0.0 and iou[2] == 0.0 and np.isnan(iou[3])
    assert cm.miou() == pytest.approx((2 / 3 + 0 + 0) / 3)
    acc = cm.acc()
    assert acc[0] == 1.0 and acc[1] == 0.0 and np.isnan(acc[2]) and np.isnan(acc[3])
    assert cm.macc() == pytest.approx(0.5)
    assert cm.oa() == pytest.approx(0.5)
    d = cm.as_dict(["a", "b", "c", "d"])
    assert d["per_class"]["d"]["iou"] is None and d["per_class"]["a"]["union"] == 3
    assert d["classes_in_miou"] == 3
    # GT classes only: class 2 (predicted, absent from the target) leaves the mean
    assert cm.miou_gt() == pytest.approx((2 / 3 + 0) / 2)
    assert d["miou_gt"] == pytest.approx(cm.miou_gt()) and d["classes_in_target"] == 2


def test_miou_gt_equals_sklearn_over_target_labels():
    rng = np.random.default_rng(3)
    target = rng.integers(0, 5, 500)  # classes 5..7 never in the target
    pred = rng.integers(0, 8, 500)
    cm = ConfusionMatrix(8).update(pred, target)
    ref = jaccard_score(target, pred, labels=np.unique(target), average="macro")
    assert cm.miou_gt() == pytest.approx(ref, abs=1e-12)
    assert cm.miou_gt() > cm.miou()  # the predicted-only classes (IoU 0) are left out


def test_ignore_index_and_errors():
    cm = ConfusionMatrix(3, ignore_index=255)
    cm.update(np.array([0, 1, 2, 0]), np.array([0, 255, 2, 1]))
    assert cm.total == 3 and cm.tp.sum() == 2
    with pytest.raises(ValueError, match=r"target values must be class ids in \[0, 3\)"):
        ConfusionMatrix(3).update(np.array([0, 1]), np.array([0, 3]))
    with pytest.raises(ValueError, match="pred values"):
        ConfusionMatrix(3).update(np.array([-1, 1]), np.array([0, 1]))
    with pytest.raises(ValueError, match="same number of elements"):
        ConfusionMatrix(3).update(np.array([0, 1, 2]), np.array([0, 1]))
    with pytest.raises(ValueError, match="integer class ids"):
        ConfusionMatrix(3).update(np.array([0.5]), np.array([0]))
    with pytest.raises(ValueError, match="3 and 4 classes"):
        ConfusionMatrix(3) + ConfusionMatrix(4)
    empty = ConfusionMatrix(3)
    assert np.isnan(empty.oa()) and np.isnan(empty.miou()) and np.isnan(empty.macc())


def test_pooled_six_fold_differs_from_mean_of_mious():
    """Pooling sums intersections and unions; a constructed 2-class example where it differs."""
    # Fold A: 1000 points, class 1 is big and perfectly segmented.
    a = ConfusionMatrix.from_matrix([[10, 10], [0, 980]])
    # Fold B: 20 points, class 1 tiny and badly segmented.
    b = ConfusionMatrix.from_matrix([[10, 0], [9, 1]])
    pooled = a + b
    np.testing.assert_array_equal(pooled.matrix, [[20, 10], [9, 981]])
    inter = a.intersection() + b.intersection()
    union = a.union() + b.union()
    np.testing.assert_allclose(pooled.iou(), inter / union)
    expected_pooled = np.mean([20 / (20 + 10 + 9), 981 / (981 + 9 + 10)])
    assert pooled.miou() == pytest.approx(expected_pooled)
    mean_folds = mean_of_mious([a, b])
    assert mean_folds == pytest.approx((a.miou() + b.miou()) / 2)
    assert abs(pooled.miou() - mean_folds) > 0.1  # 0.747 vs 0.630: the protocols differ
    # sum() and += agree with +.
    assert sum([a, b]) == pooled
    c = a.copy()
    c += b
    assert c == pooled and a.matrix[0, 1] == 10  # copy: a untouched


def test_pooling_equals_one_matrix_over_all_points():
    rng = np.random.default_rng(7)
    folds = []
    allp, allt = [], []
    for _ in range(6):
        t = rng.integers(0, 13, size=500)
        p = np.where(rng.random(500) < 0.7, t, rng.integers(0, 13, size=500))
        folds.append(ConfusionMatrix(13).update(p, t))
        allp.append(p)
        allt.append(t)
    pooled = sum(folds)
    whole = ConfusionMatrix(13).update(np.concatenate(allp), np.concatenate(allt))
    assert pooled == whole
    ref = _sk_reference(np.concatenate(allp), np.concatenate(allt), 13)
    assert pooled.miou() == pytest.approx(ref["miou"])


def test_normalized_rows_and_from_matrix_validation():
    cm = ConfusionMatrix.from_matrix([[3, 1, 0], [0, 0, 0], [2, 2, 4]])
    n = cm.normalized()
    np.testing.assert_allclose(n.sum(axis=1), [1, 0, 1])
    np.testing.assert_allclose(n[0], [0.75, 0.25, 0])
    with pytest.raises(ValueError, match="square"):
        ConfusionMatrix.from_matrix(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        ConfusionMatrix.from_matrix([[1, -1], [0, 0]])
