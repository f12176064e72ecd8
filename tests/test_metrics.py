import numpy as np
import pandas as pd
import pytest

from am3f.protocol.metrics import confusion_matrix, megc_scores, summarize


def test_confusion_matrix_rows_are_truth():
    cm = confusion_matrix([0, 0, 1, 2], [0, 1, 1, 0])
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_hand_computed_case():
    # truth  0 0 0 0 1 1 2 2 ; pred 0 0 1 2 1 1 2 0
    s = megc_scores([0, 0, 0, 0, 1, 1, 2, 2], [0, 0, 1, 2, 1, 1, 2, 0])
    # class 0: TP 2, FP 1, FN 2 -> F1 4/7, recall 1/2
    # class 1: TP 2, FP 1, FN 0 -> F1 4/5, recall 1
    # class 2: TP 1, FP 1, FN 1 -> F1 1/2, recall 1/2
    assert s["uf1"] == pytest.approx((4 / 7 + 4 / 5 + 1 / 2) / 3)
    assert s["uar"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert s["accuracy"] == pytest.approx(5 / 8)
    assert s["n"] == 8


def test_class_absent_from_ground_truth_is_left_out_of_the_means():
    # no surprise samples; one negative wrongly predicted as surprise
    s = megc_scores([0, 0, 1, 1], [0, 2, 1, 1])
    # class 0: TP 1, FN 1 -> F1 2/3, recall 1/2 ; class 1: F1 1, recall 1 ; class 2 absent -> skipped
    assert s["uf1"] == pytest.approx((2 / 3 + 1) / 2)
    assert s["uar"] == pytest.approx((1 / 2 + 1) / 2)


def test_class_never_predicted_scores_zero():
    s = megc_scores([0, 1, 2], [0, 0, 2])
    assert s["uf1"] == pytest.approx((2 / 3 + 0 + 1) / 3)
    assert s["uar"] == pytest.approx((1 + 0 + 1) / 3)


def test_perfect_predictions():
    s = megc_scores([0, 1, 2, 2], [0, 1, 2, 2])
    assert s["uf1"] == s["uar"] == s["accuracy"] == 1.0


def test_pooling_differs_from_averaging_folds():
    # MEGC2019 pools all folds before scoring: fold-wise averaging would give another number
    fold_a = ([0, 0, 1], [0, 0, 0])
    fold_b = ([1, 2, 2], [1, 2, 1])
    pooled = megc_scores(fold_a[0] + fold_b[0], fold_a[1] + fold_b[1])["uf1"]
    averaged = np.mean([megc_scores(*fold_a)["uf1"], megc_scores(*fold_b)["uf1"]])
    assert pooled != pytest.approx(averaged)


def test_summarize_per_dataset_and_seeds():
    rows = []
    for seed, preds in ((0, [0, 1, 2, 0]), (1, [0, 1, 1, 1])):
        for (ds, y), p in zip([("casme2", 0), ("casme2", 1), ("samm", 2), ("samm", 0)], preds):
            rows.append({"seed": seed, "dataset": ds, "label": y, "pred": p})
    summary = summarize(pd.DataFrame(rows))
    assert summary["seeds"] == [0, 1]
    assert set(summary["subsets"]) == {"composite", "casme2", "samm"}
    comp = summary["subsets"]["composite"]
    assert comp["per_seed"]["0"]["uf1"] == 1.0
    s1 = megc_scores([0, 1, 2, 0], [0, 1, 1, 1])
    assert comp["per_seed"]["1"]["uf1"] == pytest.approx(s1["uf1"])
    assert comp["uf1"]["mean"] == pytest.approx((1 + s1["uf1"]) / 2)
    assert comp["uf1"]["std"] == pytest.approx(np.std([1, s1["uf1"]], ddof=1))
    # the samm subset pools only samm rows: seed 1 has truth [2, 0], preds [1, 1]
    assert summary["subsets"]["samm"]["per_seed"]["1"]["uar"] == 0.0


def test_metrics_agree_with_scikit_learn_including_absent_classes():
    """Independent implementation: scikit-learn's macro F1 / recall over the classes present in the
    ground truth (predictions into an absent class still cost the true class)."""
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for trial in range(200):
        n = int(rng.integers(1, 40))
        classes = rng.choice(3, size=int(rng.integers(1, 4)), replace=False)  # some classes absent
        y = rng.choice(classes, size=n)
        p = rng.integers(0, 3, size=n)
        present = sorted(set(y.tolist()))
        ours = megc_scores(y, p)
        f1 = sklearn_metrics.f1_score(y, p, labels=present, average="macro", zero_division=0)
        rec = sklearn_metrics.recall_score(y, p, labels=present, average="macro", zero_division=0)
        assert ours["uf1"] == pytest.approx(f1), trial
        assert ours["uar"] == pytest.approx(rec), trial
        assert ours["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(y, p)), trial
