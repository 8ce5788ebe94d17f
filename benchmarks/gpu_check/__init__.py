"""``python -m benchmarks.gpu_check --out DIR [--smoke] [--stages NAME ...]``: the whole GPU check in one command.

Stages (each with its own time budget, in its own process group; see ``profiles``): ``environment``;
correctness on the device (``heads``, ``convert``, ``train5``, ``sharded``); speed against PyTorch on the same
device (``speed_r100_b512``, ``speed_r100_b128``, ``speed_sfnet20``, ``embed_r100``, ``embed_mbf``); and the
whole training loop (``loop``). ``DIR/gpu_check.json`` is rewritten after every stage, so a run killed midway
still leaves every finished stage's figures; ``DIR/gpu_check.log`` holds all output and ``DIR/gpu_check.md``
the table printed last. ``--smoke`` runs every stage on the CPU with tiny shapes (the suite runs it).
Run it from the checkout's root, with PyTorch installed (the convert and speed stages compare against it).
"""
