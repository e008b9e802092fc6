"""Scores of predictions against the truth: accuracy, the confusion matrix, precision and recall, R²,
and the reports `gpubp train` and `gpubp evaluate` print (and give in --json)."""

from __future__ import annotations

from typing import Any

import numpy as np


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of rows where the predicted class is the true one."""
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """(k, k) counts: rows are true class indices, columns predicted ones."""
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def precision_recall(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class precision (column-wise) and recall (row-wise) of a confusion matrix; 0 where a
    class was never predicted or never present."""
    tp = np.diag(cm).astype(np.float64)
    predicted, present = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros(len(tp)), where=predicted > 0)
    recall = np.divide(tp, present, out=np.zeros(len(tp)), where=present > 0)
    return precision, recall


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination averaged over outputs; as scikit-learn, an output with constant
    targets scores 1 if fitted exactly, else 0."""
    y_true = np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(len(y_pred), -1)
    res = ((y_true - y_pred) ** 2).sum(axis=0)
    tot = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)
    return r2_of_sums(res, tot)


def r2_of_sums(res: np.ndarray, tot: np.ndarray) -> float:
    """R² averaged over outputs from each output's residual sum of squares Σ(y − ŷ)² and total sum of
    squares Σ(y − ȳ)²; as scikit-learn, an output with constant targets (tot = 0) scores 1 if fitted
    exactly, else 0."""
    r2 = np.where(tot > 0, 1 - res / np.where(tot > 0, tot, 1), np.where(res == 0, 1.0, 0.0))
    return float(r2.mean())


# -- the figures a user reads: train's and evaluate's reports, their --json ------------------------
# Each is scikit-learn's definition (tests/test_metrics_report.py compares them with sklearn.metrics),
# written with NumPy so that the command needs no scikit-learn. A figure with no defined value (the
# recall of a class with no rows, ROC AUC on rows of one class) is None, shown as n/a: never a 0.


#: the one-number figures of a classifier's report (train's --json gives them as test_<name>)
REPORTED = ("accuracy", "majority_rate", "balanced_accuracy", "macro_f1", "roc_auc")


def majority_rate(y_true: np.ndarray, k: int) -> tuple[float, int]:
    """(share of the rows in the most frequent class, that class's index): the accuracy of always
    predicting it, the figure an accuracy must beat to mean anything."""
    counts = np.bincount(np.asarray(y_true, dtype=np.int64), minlength=k)
    top = int(counts.argmax())
    return float(counts[top] / counts.sum()), top


def balanced_accuracy(cm: np.ndarray) -> float:
    """The mean recall over the classes present in the truth (rows of ``cm`` with a count), as
    sklearn.metrics.balanced_accuracy_score."""
    present = cm.sum(axis=1) > 0
    return float((np.diag(cm)[present] / cm.sum(axis=1)[present]).mean())


def f1_scores(cm: np.ndarray) -> np.ndarray:
    """Per-class F1 = 2TP / (2TP + FP + FN) of a (k, k) confusion matrix; NaN for a class neither
    present nor predicted (no rows to score it on)."""
    tp = np.diag(cm).astype(np.float64)
    fp, fn = cm.sum(axis=0) - tp, cm.sum(axis=1) - tp
    den = 2 * tp + fp + fn
    f1: np.ndarray = np.divide(2 * tp, den, out=np.full(len(tp), np.nan), where=den > 0)
    return f1


def macro_f1(cm: np.ndarray) -> float:
    """The mean F1 over the classes present or predicted, as sklearn.metrics.f1_score(average="macro")."""
    f1 = f1_scores(cm)
    return float(f1[~np.isnan(f1)].mean())


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float | None:
    """The area under the ROC curve of two classes (``y_true`` 0/1, ``score`` the probability of
    class 1), as sklearn.metrics.roc_auc_score: the chance that a random positive row scores above
    a random negative one, ties counting half (the Mann-Whitney U over average ranks). None when
    the rows hold one class only."""
    y_true = np.asarray(y_true).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    n_pos = int(y_true.sum())
    n_neg = len(y_true) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts  # 0-based rank of each distinct value's first row
    rank = (first + (counts + 1) / 2)[inverse]  # average 1-based rank over ties
    return float((rank[y_true].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _or_none(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in values]


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, k: int,
                          proba: np.ndarray | None = None) -> dict[str, Any]:  # fmt: skip
    """The figures of a classifier on scored rows: class indices ``y_true``, ``y_pred`` (n,) of ``k``
    classes and, for two classes, ``proba`` (n, 2) or (n,) of class 1 (for ROC AUC). Per class:
    precision (None when never predicted), recall and F1 (None when the class has no rows here),
    support; the confusion matrix; accuracy, the majority rate and its class index, balanced
    accuracy, macro F1 and (two classes with probabilities) ROC AUC (None on rows of one class)."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    cm = confusion_matrix(y_true, y_pred, k)
    tp = np.diag(cm).astype(np.float64)
    predicted, support = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.full(k, np.nan), where=predicted > 0)
    recall = np.divide(tp, support, out=np.full(k, np.nan), where=support > 0)
    f1 = np.where(support > 0, f1_scores(cm), np.nan)
    rate, top = majority_rate(y_true, k)
    report: dict[str, Any] = {
        "accuracy": accuracy(y_true, y_pred),
        "majority_rate": rate,
        "majority_class": top,
        "balanced_accuracy": balanced_accuracy(cm),
        "macro_f1": macro_f1(cm),
    }
    if k == 2 and proba is not None:
        p = np.asarray(proba, dtype=np.float64)
        report["roc_auc"] = roc_auc(y_true, p[:, 1] if p.ndim == 2 else p)
    report.update(precision=_or_none(precision), recall=_or_none(recall), f1=_or_none(f1),
                  support=support.tolist(), confusion=cm.tolist())  # fmt: skip
    return report


def regression_report(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """R², MAE and RMSE (in the target's own units) of predictions ``y_pred`` of targets ``y_true``
    (n,) or (n, m), averaged over outputs as scikit-learn's r2_score, mean_absolute_error and
    root_mean_squared_error."""
    y_true = np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(len(y_pred), -1)
    error = y_true - y_pred
    return {
        "r2": r2_score(y_true, y_pred),
        "mae": float(np.abs(error).mean(axis=0).mean()),
        "rmse": float(np.sqrt((error**2).mean(axis=0)).mean()),
    }


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def summary(report: dict[str, Any]) -> str:
    """The figures beside accuracy, in one line: balanced accuracy, macro F1, ROC AUC (two classes)."""
    parts = [f"balanced accuracy {percent(report['balanced_accuracy'])}", f"macro F1 {number(report['macro_f1'])}"]
    if "roc_auc" in report:
        parts.append(f"ROC AUC {number(report['roc_auc'])}")
    return ", ".join(parts)


def majority_warning(report: dict[str, Any], classes: list[object], advice: str) -> str | None:
    """One line when accuracy is not above the majority rate (None otherwise): a model that always
    answered the most frequent class would score as well, so the accuracy says nothing."""
    acc, rate = report["accuracy"], report["majority_rate"]
    if acc > rate:
        return None
    top = classes[int(report["majority_class"])]
    return (
        f"warning: accuracy {percent(acc)} is not above the majority rate {percent(rate)} (answering "
        f"{top!r} for every row scores that): read the balanced accuracy and macro F1; {advice}"
    )
