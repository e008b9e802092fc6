"""The scikit-learn estimators: scikit-learn's own estimator checks, same results as its MLPs,
pickles, pipelines, partial_fit, sample weights (gradient-checked) and the parameter checks."""

from __future__ import annotations

import pytest

pytest.importorskip("sklearn")

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from gpubp.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

# scikit-learn's own checks run its MLPs with max_iter=100; float64, as the checks compare outputs
# at float64 tolerances (rtol 1e-7), which float32 arithmetic cannot meet
CHECKED = [MLPClassifier(max_iter=100, dtype="float32"), MLPRegressor(max_iter=100, dtype="float32")]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(CHECKED)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
