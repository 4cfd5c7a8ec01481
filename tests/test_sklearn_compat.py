"""scikit-learn's estimator checks on ResNetClassifier (tiny width, few epochs)."""

import warnings

from sklearn.utils.estimator_checks import check_estimator

from sklearn_crtcl import ResNetClassifier
from sklearn_crtcl.nets.base import EXPECTED_FAILED_CHECKS


def tiny_classifier():
    # enough steps to reach the >0.83 accuracy check_classifiers_train asks on blobs
    return ResNetClassifier(module__width=4, max_epochs=10, batch_size=32, lr=0.05,
                            random_state=0, device="cpu")


def test_check_estimator_passes_all_but_the_listed_checks():
    assert len(EXPECTED_FAILED_CHECKS) <= 5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(tiny_classifier(), on_fail=None,
                                  expected_failed_checks=EXPECTED_FAILED_CHECKS)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results
              if r["status"] == "failed"]
    assert failed == []
    xfailed = {r["check_name"] for r in results if r["status"] == "xfail"}
    # the listed failures really fail (the list is not stale)
    assert xfailed == set(EXPECTED_FAILED_CHECKS)
    n_passed = sum(r["status"] == "passed" for r in results)
    assert n_passed >= 50
