"""Dataset loaders: splits, formats, and one-line errors on missing or malformed files."""

import gzip
import os
import pickle
import struct

import numpy as np
import pytest
import torch

from flowgan.config import TrainConfig
from flowgan.data import ImageDataset, Split, load_dataset, read_idx
from flowgan.errors import DataError
from flowgan.training import Trainer


def test_mnist5k_is_real_and_stratified():
    d = load_dataset("mnist5k")
    assert (len(d.train), len(d.val), len(d.test)) == (4000, 500, 500)
    assert d.train.images.dtype == torch.uint8 and d.shape == (1, 28, 28)
    assert torch.bincount(d.train.labels).tolist() == [400] * 10
    assert torch.bincount(d.test.labels).tolist() == [50] * 10

    # the three splits are disjoint images
    def flat(split):
        return {bytes(x.numpy().tobytes()) for x in split.images}

    assert not (flat(d.train) & flat(d.test))


def test_digits_are_rescaled_to_bytes():
    d = load_dataset("digits")
    assert d.shape == (1, 8, 8) and len(d.train) + len(d.val) + len(d.test) == 1797
    assert int(d.train.images.max()) == 255


def _write_idx(path, array, gz=True):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


def test_idx_reader_round_trip_and_errors(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a.gz", a)
    assert np.array_equal(read_idx(tmp_path / "a.gz"), a)
    _write_idx(tmp_path / "b", a, gz=False)
    assert np.array_equal(read_idx(tmp_path / "b"), a)
    (tmp_path / "c").write_bytes((tmp_path / "b").read_bytes()[:-3])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "c")
    (tmp_path / "d").write_bytes(b"\x01\x02\x03\x04\x05\x06\x07\x08")
    with pytest.raises(DataError, match="not an IDX"):
        read_idx(tmp_path / "d")


def test_full_mnist_uses_the_papers_split(shared_data_dir):
    d = load_dataset("mnist", shared_data_dir, download=False)
    assert (len(d.train), len(d.val), len(d.test)) == (50000, 10000, 10000)
    assert d.test.labels[:5].tolist() == [7, 2, 1, 0, 4]  # the t10k file's first labels


@pytest.mark.skipif(
    not os.path.isdir("/usr/share/datasets/fashion-mnist"), reason="Debian's dataset-fashion-mnist not installed"
)
def test_fashion_mnist_from_the_debian_package(tmp_path):
    d = load_dataset("fashion-mnist", tmp_path, download=False)
    assert (len(d.train), len(d.val), len(d.test)) == (50000, 10000, 10000)


def test_cifar10_python_batches_are_read_with_a_5k_random_validation_split(tmp_path):
    """The reader on files in CIFAR-10's python format (random pixels: a format test only)."""
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(10000, 3072), dtype=np.uint8)
        with open(base / name, "wb") as f:
            pickle.dump({"data": data, "labels": rng.integers(0, 10, size=10000).tolist()}, f)
    d = load_dataset("cifar10", tmp_path, download=False)
    assert (len(d.train), len(d.val), len(d.test)) == (45000, 5000, 10000)
    assert d.shape == (3, 32, 32) and d.flip
    batches = [pickle.load(open(base / f"data_batch_{i}", "rb"))["data"].reshape(-1, 3, 32, 32) for i in range(1, 6)]
    originals = torch.from_numpy(np.concatenate(batches))
    # train and val partition the 50,000 training images; val is a random subset, not the last 5,000
    assert torch.equal(
        torch.cat([d.train.images, d.val.images]).sum(0, dtype=torch.int64), originals.sum(0, dtype=torch.int64)
    )
    assert not torch.equal(d.val.images, originals[45000:])


def test_npz_layouts_holdout_and_errors(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, size=(50, 6, 6, 3), dtype=np.uint8)
    np.savez(tmp_path / "nhwc.npz", x_train=x, x_test=x[:10], y_train=np.arange(50) % 3, y_test=np.arange(10) % 3)
    d = load_dataset(str(tmp_path / "nhwc.npz"))
    assert d.shape == (3, 6, 6) and (len(d.train), len(d.val), len(d.test)) == (45, 5, 10) and d.num_classes == 3
    assert torch.equal(d.test.images[0], torch.from_numpy(x[0]).permute(2, 0, 1))
    np.savez(tmp_path / "nhw.npz", x_train=x[..., 0], x_val=x[:5, ..., 0], x_test=x[:10, ..., 0])
    d = load_dataset(str(tmp_path / "nhw.npz"))
    assert d.shape == (1, 6, 6) and len(d.val) == 5 and d.train.labels is None
    np.savez(tmp_path / "bad.npz", x_train=x)
    with pytest.raises(DataError, match="x_test"):
        load_dataset(str(tmp_path / "bad.npz"))
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(str(tmp_path / "missing.npz"))
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("imagenet")


def test_flips_are_applied_to_training_batches_only_when_asked(tmp_path):
    # one asymmetric image repeated: a flipped copy is told apart from the original
    img = torch.zeros(1, 1, 4, 4, dtype=torch.uint8)
    img[..., 0] = 255
    images = img.repeat(40, 1, 1, 1)
    split = Split(images)
    for flip in (False, True):
        ds = ImageDataset("toy", split, Split(images[:8]), Split(images[:8]), flip=flip)
        cfg = TrainConfig(
            dataset="toy", model="nice-small", batch_size=40, max_steps=1, train_eval_samples=8, collapse_samples=0
        )
        trainer = Trainer(cfg, tmp_path / f"r{flip}", data=ds, progress=False)
        seen = []  # the real batches the objective is given in training
        loss = trainer.modules.objective.generator_loss

        def recording(G, D, real, z, rand, loss=loss):
            seen.append(real.detach().clone())
            return loss(G, D, real, z, rand)

        trainer.modules.objective.generator_loss = recording
        trainer.fit()
        assert len(seen) == 1 and seen[0].shape == (40, 1, 4, 4)
        batch = seen[0]
        assert bool(((batch >= 0) & (batch <= 1)).all())  # dequantized (k + u)/256
        flipped = (batch[:, 0, :, -1] > 0.5).all(dim=1)
        assert bool(flipped.any()) == flip and bool((~flipped).any())


def test_mnist5k_prefixes_mix_the_classes():
    d = load_dataset("mnist5k")
    for split in (d.train, d.val, d.test):
        assert len(torch.unique(split.labels[:50])) >= 8  # the file itself is sorted by class


def test_cifar10_5k_from_its_npz_in_either_place(tmp_path):
    gen = np.random.default_rng(0)
    arrays = dict(
        x_train=gen.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8),
        y_train=np.arange(40) % 10,
        x_test=gen.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8),
        y_test=np.arange(10) % 10,
    )
    (tmp_path / "cifar10-5k").mkdir()
    np.savez(tmp_path / "cifar10-5k" / "cifar10-5k.npz", **arrays)
    ds = load_dataset("cifar10-5k", tmp_path)
    assert ds.name == "cifar10-5k" and ds.shape == (3, 32, 32) and ds.flip and ds.num_classes == 10
    assert (len(ds.train), len(ds.val), len(ds.test)) == (36, 4, 10)  # 10% of training images validate
    # NHWC -> NCHW, pixel for pixel
    assert torch.equal(ds.test.images[3], torch.from_numpy(arrays["x_test"][3]).permute(2, 0, 1))
    with pytest.raises(DataError, match="cifar10-5k not found"):
        load_dataset("cifar10-5k", tmp_path / "nowhere")
    np.savez(
        tmp_path / "cifar10-5k.npz",
        x_train=arrays["x_train"][:, :28, :28, :1],
        x_test=arrays["x_test"][:, :28, :28, :1],
    )
    with pytest.raises(DataError, match="not CIFAR-10's"):
        load_dataset("cifar10-5k", tmp_path)  # the folder's own file comes first


def test_the_real_cifar10_5k(shared_data_dir):
    ds = load_dataset("cifar10-5k", shared_data_dir)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (3600, 400, 1000)
    assert sorted(torch.bincount(ds.test.labels.long(), minlength=10).tolist())[0] > 50  # all ten classes


# ----------------------------------------------------------------------------- one check at the door


def _npz_of(path, digits, **changes):
    arrays = dict(
        x_train=digits.train.images.numpy(),
        y_train=digits.train.labels.numpy(),
        x_test=digits.test.images.numpy(),
        y_test=digits.test.labels.numpy(),
    )
    arrays.update(changes)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return str(path)


@pytest.mark.parametrize(
    "changes, needle",
    [
        (
            dict(x_test=np.zeros((0, 8, 8), np.uint8), y_test=np.zeros(0, np.int64)),
            "bad.npz: the test split has no images",
        ),
        (dict(y_test=None), "bad.npz has labels y_train but no y_test"),
        (dict(y_train=np.full(1437, 10**12)), "bad.npz: class ids up to 1000000000000 for 1294 training images"),
        (dict(y_train=np.zeros(1000, np.int64)), "bad.npz:y_train: 1000 labels for 1437 images"),
    ],
)
def test_every_npz_is_checked_when_it_is_loaded(tmp_path, changes, needle):
    """Empty splits, labels for some splits only, class ids far beyond the data and labels of the
    wrong length: one line naming the file, the array or split and the problem."""
    with pytest.raises(DataError) as e:
        load_dataset(_npz_of(tmp_path / "bad.npz", load_dataset("digits"), **changes))
    assert needle in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "splits, needle",
    [
        (lambda d: {"train": d.train.images, "test": d.test.images[:0]}, "test: no images"),
        (
            lambda d: {"train": (d.train.images, d.train.labels), "test": d.test.images},
            "labels for train, val but not for test",
        ),
        (
            lambda d: {"train": (d.train.images, d.train.labels * 10**9), "test": (d.test.images, d.test.labels)},
            "class ids up to 9000000000",
        ),
        (lambda d: {"train": d.train.images, "test": d.test.images[:, :, :4]}, "image shapes differ between splits"),
    ],
)
def test_data_passed_from_python_gets_the_same_check(splits, needle):
    from flowgan.data_input import as_dataset

    with pytest.raises(DataError, match=needle):
        as_dataset(splits(load_dataset("digits")))


def test_declared_classes_bound_the_labels_and_a_good_dataset_passes(tmp_path):
    from flowgan.data import validate_dataset

    d = load_dataset("digits")
    assert validate_dataset(d, "digits") is d and d.num_classes == 10
    bad = ImageDataset("x", d.train, d.val, Split(d.test.images, d.test.labels + 5), num_classes=10)
    with pytest.raises(DataError, match="class id 14 is out of range for 10 classes"):
        validate_dataset(bad, "x")
    derived = load_dataset(_npz_of(tmp_path / "ok.npz", load_dataset("digits")))
    assert derived.num_classes == 10 and len(derived.val) == 143
