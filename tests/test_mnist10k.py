"""MNIST from IDX files: MNIST-10k (the official test set, fixed seeded 8,000 / 2,000 split) and the full split.

Tests on the real test set (``../shared/data/mnist``) skip when it is absent.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from conftest import write_idx
from labtrain.training.tasks import MNIST10K_SPLIT_SEED, TaskError, load_idx, make_task

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "data" / "mnist"
HISTOGRAM = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MD5 = {"t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
       "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"}


@pytest.fixture(scope="module")
def mnist_dir() -> Path:
    if not all((MNIST / name).is_file() for name in MD5):
        pytest.skip(f"shared data not available: {MNIST}")
    return MNIST


@pytest.fixture(scope="module")
def mnist10k(mnist_dir):
    return make_task("mnist", mnist_path=str(mnist_dir))


def row_keys(x: np.ndarray) -> set[bytes]:
    return {hashlib.sha1(r.tobytes()).digest() for r in np.ascontiguousarray(x)}


def test_real_files_and_label_histogram(mnist_dir):
    for name, md5 in MD5.items():
        assert hashlib.md5((mnist_dir / name).read_bytes()).hexdigest() == md5
    labels = load_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    images = load_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8 and labels.shape == (10000,)
    assert np.bincount(labels, minlength=10).tolist() == HISTOGRAM


def test_mnist10k_is_a_fixed_8000_2000_split_of_the_test_set(mnist10k, mnist_dir):
    t = mnist10k
    assert (len(t.x_train), len(t.x_test)) == (8000, 2000)
    assert t.info["mnist_split"] == "mnist-10k" and t.info["mnist_split_seed"] == MNIST10K_SPLIT_SEED
    assert "8000 train / 2000 test" in t.info["mnist_split_note"]
    assert t.n_inputs == 784 and t.n_outputs == 10 and t.decoder == "argmax" and not t.test_is_train
    # a partition of the 10,000 labels: the two histograms add up to the file's
    assert (np.bincount(t.y_train, minlength=10) + np.bincount(t.y_test, minlength=10)).tolist() == HISTOGRAM
    assert np.bincount(t.y_test, minlength=10).min() > 150          # every class in the test split
    # disjoint: no test image is a training image (compared as raw pixels, before scaling)
    raw = load_idx(mnist_dir / "t10k-images-idx3-ubyte.gz").reshape(-1, 784)
    perm = np.random.default_rng(MNIST10K_SPLIT_SEED).permutation(10000)
    np.testing.assert_array_equal(t.y_train, load_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")[perm[:8000]])
    assert not row_keys(raw[perm[:8000]]) & row_keys(raw[perm[8000:]])
    assert len(row_keys(t.x_train)) + len(row_keys(t.x_test)) == len(row_keys(np.vstack([t.x_train, t.x_test])))
    # the same split whatever the task seed, and on every call
    again = make_task("mnist", mnist_path=str(mnist_dir), seed=123, n_train=500, n_test=100)
    np.testing.assert_array_equal(again.y_train, t.y_train[:500])
    np.testing.assert_array_equal(again.y_test, t.y_test[:100])


def test_full_files_keep_the_official_split(mnist_dir, tmp_path):
    for name in MD5:
        (tmp_path / name).symlink_to(mnist_dir / name)
    rng = np.random.default_rng(0)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (60, 28, 28)))
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, 60))
    t = make_task("mnist", mnist_path=str(tmp_path), downsample=4)
    assert t.info["mnist_split"] == "official" and (len(t.x_train), len(t.x_test)) == (60, 10000)
    assert np.bincount(t.y_test, minlength=10).tolist() == HISTOGRAM
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(TaskError, match="train images but not the train labels"):
        make_task("mnist", mnist_path=str(tmp_path))


def test_mnist10k_split_on_small_synthetic_files(tmp_path):
    """Without the shared data: the t10k files alone give the seeded 80 / 20 split, train files the official one."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (50, 28, 28))
    labels = np.arange(50) % 10
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    t = make_task("mnist", mnist_path=str(tmp_path))
    perm = np.random.default_rng(MNIST10K_SPLIT_SEED).permutation(50)
    assert (len(t.y_train), len(t.y_test)) == (40, 10) and t.info["mnist_split"] == "mnist-10k"
    np.testing.assert_array_equal(t.y_train, labels[perm[:40]])
    np.testing.assert_array_equal(t.y_test, labels[perm[40:]])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels[:49])
    with pytest.raises(TaskError, match="50 images but 49 labels"):
        make_task("mnist", mnist_path=str(tmp_path))


def test_gates_say_train_accuracy_of_their_4_cases():
    gate = make_task("xor", input_low_v=-1.2, input_high_v=0.6)
    assert gate.test_is_train and gate.accuracy_names() == ("train accuracy (4 cases)", None)
    assert gate.describe()["test_is_train"] is True
    reg = make_task("linear_regression")
    assert not reg.test_is_train and reg.accuracy_names() == ("train accuracy", "test accuracy")
