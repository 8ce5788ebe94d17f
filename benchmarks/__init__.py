"""Speed figures (never timed tests): ``python -m benchmarks.train_step``, ``benchmarks.embed``, ``benchmarks.data``."""
