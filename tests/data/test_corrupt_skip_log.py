"""``config.data.on_corrupt='skip'`` names each skipped file once in the log (an absl warning on the console),
besides counting it in the metrics."""

import logging

from jsphere.data import pipeline


def test_each_skipped_image_is_named_once_in_the_log(tmp_path, synthetic_data, caplog):
    lines = (synthetic_data / "train_list.txt").read_text().splitlines()[:16]
    for n in (3, 9):
        (tmp_path / f"bad{n}.jpg").write_bytes(b"\xff\xd8 truncated")
        lines[n] = f"{tmp_path / f'bad{n}.jpg'} id00000"
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    cfg = {"source": str(tmp_path / "list.txt"), "data_dir": str(synthetic_data), "workers": 0, "threads": 1,
           "on_corrupt": "skip"}
    it, _ = pipeline.make_train_iterator(cfg, global_batch_size=16, seed=0)
    with caplog.at_level(logging.WARNING):
        batches = [next(it) for _ in range(3)]  # one batch is one epoch: each bad file is met three times
    assert [int(b["corrupt"].sum()) for b in batches] == [2, 2, 2]
    skipped = [r.getMessage() for r in caplog.records if "on_corrupt='skip'" in r.getMessage()]
    assert len(skipped) == 2, skipped
    for n in (3, 9):
        assert sum(f"bad{n}.jpg" in m and f"list.txt:{n + 1}" in m for m in skipped) == 1, skipped
    assert all(r.levelno == logging.WARNING for r in caplog.records if "on_corrupt" in r.getMessage())
