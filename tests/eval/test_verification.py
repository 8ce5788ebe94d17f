"""Verification metrics against independent computations (brute-force thresholds, hand-computed folds)."""

import numpy as np
import pytest

from jsphere.eval.verification import angular_fisher_score, kfold_accuracy, opensphere_metrics


def brute_force_accuracy(scores, labels):
    thresholds = np.concatenate([np.unique(scores), [np.inf]])
    return 100 * max(np.mean((scores >= t) == labels) for t in thresholds)


def test_best_threshold_accuracy_matches_brute_force_on_random_scores():
    rng = np.random.default_rng(0)
    labels = rng.random(500) < 0.4
    scores = np.round(rng.normal(labels * 1.0, 1.0), 2)  # rounding creates ties
    m = opensphere_metrics(scores, labels)
    assert m["ACC"] == pytest.approx(brute_force_accuracy(scores, labels))


def test_perfect_separation_and_all_equal_scores():
    labels = np.array([1, 1, 0, 0, 0], bool)
    perfect = opensphere_metrics(np.array([0.9, 0.8, 0.1, 0.2, 0.3]), labels, fprs=(0.1,))
    assert perfect["ACC"] == 100 and perfect["AUC"] == 100 and perfect["EER"] == pytest.approx(0, abs=1e-9)
    assert perfect["TPR@FPR=0.1"] == 100
    flat = opensphere_metrics(np.full(5, 0.5), labels, fprs=(0.5,))
    assert flat["ACC"] == 60 and flat["AUC"] == 50 and flat["EER"] == pytest.approx(50)
    assert flat["TPR@FPR=0.5"] == pytest.approx(50)


def test_eer_and_tpr_at_fpr_follow_the_linearly_interpolated_roc():
    # ROC points (0,0), (0,0.5), (0.5,0.5), (0.5,1), (1,1): EER where 1 - x = ROC(x) -> x = 0.5
    scores = np.array([4, 3, 2, 1.0])
    labels = np.array([1, 0, 1, 0], bool)
    m = opensphere_metrics(scores, labels, fprs=(0.25,))
    assert m["EER"] == pytest.approx(50)
    assert m["TPR@FPR=0.25"] == pytest.approx(50)
    assert m["AUC"] == pytest.approx(75)


def test_one_class_pair_set_is_refused():
    with pytest.raises(ValueError, match="genuine and impostor"):
        opensphere_metrics(np.ones(3), np.ones(3, bool))


def test_kfold_accuracy_on_a_hand_computed_case():
    # 10 pairs -> folds of one pair each. Same pairs at distance 0.5, different ones at 2.0 except pair 9 (0.4).
    issame = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0], bool)
    dist = np.array([0.5] * 5 + [2.0] * 4 + [0.4])
    angle = np.arccos(1 - dist / 2)  # unit vectors whose squared distance is dist
    emb1 = np.tile([1.0, 0.0], (10, 1))
    emb2 = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    res = kfold_accuracy(emb1, emb2, issame, nfolds=10)
    # training on 9 folds always picks the first maximal threshold; only the fold holding pair 9 is wrong
    assert res["acc_mean"] == pytest.approx(90.0)
    assert res["acc_std"] == pytest.approx(30.0)


def test_angular_fisher_score_is_lower_for_tighter_classes():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(5, 16))
    labels = np.repeat(np.arange(5), 20)
    tight = centres[labels] + 0.05 * rng.normal(size=(100, 16))
    loose = centres[labels] + 0.8 * rng.normal(size=(100, 16))
    assert 0 < angular_fisher_score(tight, labels) < angular_fisher_score(loose, labels)
