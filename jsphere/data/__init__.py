"""Input data: sources in every format the field uses, numpy-only decoding/augmentation, Grain pipelines.

Nothing in this package imports JAX (Grain worker processes run it).
"""
