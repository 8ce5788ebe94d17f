"""Evaluation: the ``--mode=eval`` run over a workdir's checkpoints (``run``), one evaluator per set type
(``evaluators``), the verification metrics of both protocols (``verification``), pair sets, IJB-B/C, reports.

The names below are imported on first use (``jsphere.lazy_exports``):

* ``evaluate(config, workdir)``: ``--mode=eval`` in Python;
* ``make_evaluator(set_cfg)(embedder) -> Result``: one configured set (pairs, ``.bin``, IJB) evaluated with a
  ``jsphere.Embedder``; ``PairEvaluator``, ``IJBEvaluator``; ``load_pair_set(set_cfg) -> PairSet``;
* metrics on numpy arrays: ``opensphere_metrics(scores [P], labels [P])`` (OpenSphere's ACC, EER, AUC, TPR@FPR),
  ``kfold_accuracy(emb1 [P, D], emb2 [P, D], issame [P])`` (the standard 10-fold protocol), ``xnorm``,
  ``angular_fisher_score(features [N, D], labels [N])``, ``tar_at_far(scores, labels)`` (IJB's TAR@FAR).
"""

from typing import TYPE_CHECKING

from jsphere import lazy_exports

EXPORTS = {
    "evaluate": "jsphere.eval.run",
    "make_evaluator": "jsphere.eval.evaluators",
    "PairEvaluator": "jsphere.eval.evaluators",
    "IJBEvaluator": "jsphere.eval.evaluators",
    "Result": "jsphere.eval.evaluators",
    "load_pair_set": "jsphere.eval.pair_sets",
    "PairSet": "jsphere.eval.pair_sets",
    "opensphere_metrics": "jsphere.eval.verification",
    "kfold_accuracy": "jsphere.eval.verification",
    "xnorm": "jsphere.eval.verification",
    "angular_fisher_score": "jsphere.eval.verification",
    "tar_at_far": "jsphere.eval.ijb",
}
__all__ = ["IJBEvaluator", "PairEvaluator", "PairSet", "Result", "angular_fisher_score", "evaluate", "kfold_accuracy",
           "load_pair_set", "make_evaluator", "opensphere_metrics", "tar_at_far", "xnorm"]
__getattr__, __dir__ = lazy_exports.attach(__name__, EXPORTS)

if TYPE_CHECKING:
    from jsphere.eval.evaluators import IJBEvaluator, PairEvaluator, Result, make_evaluator
    from jsphere.eval.ijb import tar_at_far
    from jsphere.eval.pair_sets import PairSet, load_pair_set
    from jsphere.eval.run import evaluate
    from jsphere.eval.verification import angular_fisher_score, kfold_accuracy, opensphere_metrics, xnorm
