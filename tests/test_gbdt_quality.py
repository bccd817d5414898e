"""GBDT quality on the bundled UCI Adult data (test-set AUC), through the public API.

Measured (recforge 0.x, this commit): GBDTClassifier(n_estimators=300, max_depth=6, learning_rate=0.1,
reg_lambda=5) on the raw DataFrame → AUC 0.9287 (the same with reg_lambda=1: 0.9280; xgboost hist
300 trees depth 6 eta 0.1 on one-hot columns: 0.9285). Threshold = the issue's target 0.928.
"""

import pytest

from recforge.datasets import adult
from recforge.metrics import log_loss, roc_auc_score
from recforge.rank import GBDTClassifier

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def data():
    return adult()


def test_adult_auc(data):
    model = GBDTClassifier(
        n_estimators=300, max_depth=6, learning_rate=0.1, reg_lambda=5, n_threads=2
    )
    model.fit(data.X_train, data.y_train)
    proba = model.predict_proba(data.X_test)[:, 1]
    assert roc_auc_score(data.y_test, proba) >= 0.928
    assert log_loss(data.y_test, proba) <= 0.280
    top = [model.feature_names_in_[i] for i in model.feature_importances_.argsort()[::-1][:3]]
    assert "relationship" in top or "marital_status" in top
