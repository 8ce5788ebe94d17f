"""PyTorch references, written from the reference codebases (needs torch): the backbones with their released
state_dict names (``backbones``, the IR family in ``ir``), the heads with OpenSphere's semantics (``heads``),
independent implementations of the other losses from their papers (``losses``), OpenSphere's MTCNN code path
(``mtcnn``), each codebase's training loop (``loops``) and random weights at a realistic scale
(``random_weights``). The exporters, ``converters.check``, the test suite and the benchmarks compare against them.
"""
