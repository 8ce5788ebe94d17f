"""Input data: sources in every format the field uses, numpy-only decoding/augmentation, Grain pipelines, the inputs
of the commands, landmark alignment, synthetic identities and the packed format.

No module here computes with JAX: Grain's worker processes run the decoding and augmentation.
"""
