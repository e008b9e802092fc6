"""Scores of predictions against the truth: accuracy, confusion matrix, precision and recall, R²."""

from __future__ import annotations

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
