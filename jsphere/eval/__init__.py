"""Evaluation: the ``--mode=eval`` run over a workdir's checkpoints (``run``), one evaluator per set type
(``evaluators``), the verification metrics of both protocols (``verification``), pair sets, IJB-B/C, reports."""
