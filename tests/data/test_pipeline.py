"""The Grain training pipeline: process sharding, resumable state, corrupt-image policy, samplers."""

import numpy as np
import pytest

from jsphere.data import pipeline
from jsphere.data.decode import CorruptImageError


def _cfg(data, **kw):
    return {"source": str(data / "train_list.txt"), "data_dir": str(data), "workers": 0, "flip": 0.5, **kw}


def _images_seen(it, batches):
    return [next(it) for _ in range(batches)]


def test_two_processes_see_disjoint_slices_that_cover_an_epoch(synthetic_data):
    # 72 images, global batch 8: one epoch = 9 global batches = 9 local batches of 4 per process
    seen = []
    for p in range(2):
        it, info = pipeline.make_train_iterator(_cfg(synthetic_data, flip=0.0), global_batch_size=8, seed=3,
                                                process_index=p, process_count=2)
        batches = _images_seen(it, 9)
        assert all(b["image"].shape == (4, 112, 112, 3) and b["image"].dtype == np.float32 for b in batches)
        seen.append(np.concatenate([b["image"].reshape(4, -1)[:, :64] for b in batches]))
    assert info.num_images == 72 and info.num_classes == 12
    keys = [{row.tobytes() for row in s} for s in seen]
    assert len(keys[0]) == len(keys[1]) == 36 and not keys[0] & keys[1]


def test_restoring_the_iterator_state_reproduces_the_next_batch(synthetic_data):
    it, _ = pipeline.make_train_iterator(_cfg(synthetic_data), global_batch_size=8, seed=0)
    _images_seen(it, 3)
    state = it.get_state()
    expected = next(it)
    fresh, _ = pipeline.make_train_iterator(_cfg(synthetic_data), global_batch_size=8, seed=0)
    fresh.set_state(state)
    got = next(fresh)
    np.testing.assert_array_equal(got["image"], expected["image"])
    np.testing.assert_array_equal(got["label"], expected["label"])


def test_epochs_are_reshuffled(synthetic_data):
    it, _ = pipeline.make_train_iterator(_cfg(synthetic_data), global_batch_size=72, seed=0)
    first, second = next(it)["label"], next(it)["label"]
    assert sorted(first) == sorted(second) and not np.array_equal(first, second)


def test_corrupt_images_raise_or_are_replaced_and_counted(tmp_path, synthetic_data):
    lines = (synthetic_data / "train_list.txt").read_text().splitlines()[:16]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    lines[5] = f"{bad} id00000"
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    cfg = {"source": str(tmp_path / "list.txt"), "data_dir": str(synthetic_data), "workers": 0}
    it, _ = pipeline.make_train_iterator(cfg, global_batch_size=16, seed=0)
    with pytest.raises(CorruptImageError, match="bad.jpg .*list.txt:6"):
        next(it)
    it, _ = pipeline.make_train_iterator({**cfg, "on_corrupt": "skip"}, global_batch_size=16, seed=0)
    batch = next(it)
    assert int(batch["corrupt"].sum()) == 1


def test_label_noise_is_seeded_and_changes_about_the_requested_share():
    labels = np.arange(10_000) % 100
    a = pipeline.noisy_labels(labels, 100, 0.6, seed=10086)
    b = pipeline.noisy_labels(labels, 100, 0.6, seed=10086)
    np.testing.assert_array_equal(a, b)
    assert 0.55 < np.mean(a != labels) < 0.62  # 60% replaced, 1% of replacements keep their label


def test_grouped_sampler_draws_k_images_of_each_identity(synthetic_data):
    cfg = _cfg(synthetic_data, sampler={"type": "grouped", "samples_per_identity": 3, "unbalance_factor": 0.5})
    it, _ = pipeline.make_train_iterator(cfg, global_batch_size=12, seed=0)
    labels = next(it)["label"]
    assert labels.shape == (12,)
    groups = labels.reshape(4, 3)
    assert (groups == groups[:, :1]).all() and len(set(groups[:, 0])) == 4


def test_worker_processes_produce_the_same_batches(synthetic_data):
    single, _ = pipeline.make_train_iterator(_cfg(synthetic_data), global_batch_size=8, seed=5)
    multi, _ = pipeline.make_train_iterator(_cfg(synthetic_data, workers=2), global_batch_size=8, seed=5)
    try:
        for _ in range(2):
            a, b = next(single), next(multi)
            np.testing.assert_array_equal(a["image"], b["image"])
    finally:
        multi.close()


def test_opensphere_v2_augmenter_changes_images_but_keeps_shape_and_dtype():
    from jsphere.data import transforms

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)
    for kind in ("crop_prob", "lowres_prob", "photo_prob"):
        out = transforms.augment_opensphere_v2(image, np.random.default_rng(1), **{kind: 1.0})
        assert out.shape == image.shape and out.dtype == np.uint8 and not np.array_equal(out, image), kind
    cropped = transforms.crop_paste(image, np.random.default_rng(2))
    kept = np.any(cropped != 0, axis=2)
    np.testing.assert_array_equal(cropped[kept], image[kept])  # pasted back at the same place, black elsewhere
    assert np.array_equal(transforms.augment_opensphere_v2(image, rng), image)  # all probabilities 0


def test_pack_cli_prints_a_summary(tmp_path, synthetic_data, capsys):
    from jsphere.data import pack

    assert pack.main(["--source", str(synthetic_data / "train_list.txt"), "--out", str(tmp_path / "p")]) == 0
    assert "packed 72 images of 12 identities" in capsys.readouterr().out
