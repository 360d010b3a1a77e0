"""Tasks: truth tables, encodings to volts, splits, decoders, MNIST from IDX files."""

from __future__ import annotations


import numpy as np
import pytest

from conftest import write_idx
from labtrain.training.tasks import GATES, TaskError, accuracy, decode, load_idx, make_task


@pytest.mark.parametrize("gate", sorted(GATES))
def test_gates_encode_truth_table(gate):
    t = make_task(gate, input_low_v=-0.5, input_high_v=0.5, target_on_v=0.7, target_off_v=0.1)
    np.testing.assert_array_equal(t.x_train, [[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])
    np.testing.assert_array_equal(t.y_train, GATES[gate])
    np.testing.assert_allclose(t.t_train[:, 0], np.where(np.array(GATES[gate]) == 1, 0.7, 0.1))
    assert t.decoder == "nearest_target" and t.n_outputs == 1
    assert accuracy(t, t.t_train, t.y_train) == 1.0


def test_bias_and_complementary_inputs():
    t = make_task("xor", input_low_v=0.0, input_high_v=1.0, bias_inputs_v=[1.0, 0.25], complementary_inputs=True)
    assert t.n_inputs == 2 + 2 + 2
    np.testing.assert_allclose(t.x_train[:, 2:4], 1.0 - t.x_train[:, :2])
    np.testing.assert_allclose(t.x_train[:, 4:], [[1.0, 0.25]] * 4)
    assert t.describe()["complementary_inputs"] is True


def test_digits_downsample_classes_and_scaling():
    t = make_task("digits", classes=[3, 7, 9], downsample=2, input_low_v=0.1, input_high_v=0.9, test_fraction=0.25)
    assert t.n_inputs == 16 and t.n_outputs == 3
    assert set(np.unique(t.y_train)) == {0, 1, 2}
    assert t.x_train.min() >= 0.1 - 1e-12 and t.x_train.max() <= 0.9 + 1e-12
    assert t.x_test.min() >= 0.1 - 1e-12 and t.x_test.max() <= 0.9 + 1e-12  # test set clipped to the same range
    n = len(t.x_train) + len(t.x_test)
    assert len(t.x_test) == pytest.approx(0.25 * n, abs=3)
    # stratified: every class in both splits in about the same proportion
    for c in range(3):
        assert abs(np.mean(t.y_train == c) - np.mean(t.y_test == c)) < 0.05
    assert t.decoder == "argmax"


def test_split_is_seeded():
    a, b = make_task("iris", seed=4), make_task("iris", seed=4)
    c = make_task("iris", seed=5)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)


def test_regression_targets_reachable_by_a_passive_network():
    t = make_task("linear_regression", n_samples=50, n_features=3, n_targets=2)
    assert t.n_inputs == 3 and t.n_outputs == 2 and t.decoder == "regression"
    # targets are convex-ish combinations of inputs: within the input range
    assert t.t_train.min() >= 0 and t.t_train.max() <= 1
    assert np.isnan(accuracy(t, t.t_train, t.y_train))
    nl = make_task("nonlinear_regression", n_samples=50)
    assert 0.0 < nl.t_train.min() and nl.t_train.max() < 1.0


def test_decoders():
    out = np.array([[0.1, 0.5, 0.2], [0.6, 0.1, 0.0]])
    np.testing.assert_array_equal(decode(out, "argmax"), [1, 0])
    targets = np.array([[0.1], [0.6]])
    np.testing.assert_array_equal(decode(np.array([[0.2], [0.4], [0.9]]), "nearest_target", targets), [0, 1, 1])
    with pytest.raises(ValueError):
        decode(out, "regression")


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "digits", "classes": [1, 12]}, "no class 12"),
    ({"name": "digits", "downsample": 3}, "does not divide"),
    ({"name": "xor", "decoder": "argmax"}, "argmax needs one output per class"),
    ({"name": "linear_regression", "decoder": "argmax"}, "needs a classification task"),
    ({"name": "mnist"}, "needs mnist_path"),
    ({"name": "spirals"}, "unknown task"),
])
def test_task_errors(kwargs, message):
    with pytest.raises(TaskError, match=message):
        make_task(**kwargs)


def test_mnist_from_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    tr_x = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    tr_y = rng.integers(0, 10, 40).astype(np.uint8)
    te_x = rng.integers(0, 256, (10, 28, 28), dtype=np.uint8)
    te_y = rng.integers(0, 10, 10).astype(np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", tr_x)
    write_idx(tmp_path / "train-labels-idx1-ubyte", tr_y)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", te_x)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", te_y)
    np.testing.assert_array_equal(load_idx(tmp_path / "train-images-idx3-ubyte.gz"), tr_x)
    t = make_task("mnist", mnist_path=str(tmp_path), downsample=4, n_train=30, n_test=10)
    assert t.x_train.shape == (30, 49) and t.x_test.shape == (10, 49)  # MNIST keeps its own split
    np.testing.assert_array_equal(t.y_train, tr_y[:30])
    assert t.n_outputs == 10


def test_mnist_missing_file_and_bad_idx(tmp_path):
    with pytest.raises(TaskError, match="never downloads"):
        make_task("mnist", mnist_path=str(tmp_path))
    with pytest.raises(TaskError, match="does not exist"):
        make_task("mnist", mnist_path=str(tmp_path / "nope"))
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(TaskError, match="bad magic"):
        load_idx(tmp_path / "bad")
    write_idx(tmp_path / "short", np.zeros((3, 4), np.uint8))
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-2])
    with pytest.raises(TaskError, match="header says"):
        load_idx(tmp_path / "short")


def test_nearest_phase_decoder_wraps_around():
    targets = np.array([[-np.pi / 2], [np.pi / 2]])
    out = np.array([[-1.4], [1.6], [np.pi / 2 + 2 * np.pi], [-np.pi / 2 - 2 * np.pi + 0.1]])
    np.testing.assert_array_equal(decode(out, "nearest_phase", targets), [0, 1, 1, 0])


def test_complementary_outputs_mirror_the_targets_and_read_the_pair_difference():
    t = make_task("iris", complementary_outputs=True, target_on_v=0.3, target_off_v=-0.1)
    assert t.n_outputs == 6 and t.decoder == "nearest_target" and t.describe()["complementary_outputs"] is True
    np.testing.assert_allclose(t.class_targets_v[:, 3:], 0.2 - t.class_targets_v[:, :3])
    np.testing.assert_allclose(t.t_train, t.class_targets_v[t.y_train])
    # nearest_target on mirrored pairs is the argmax of the pair differences v_k - v_k'
    rng = np.random.default_rng(0)
    out = rng.normal(0.1, 0.3, (500, 6))
    np.testing.assert_array_equal(decode(out, t.decoder, t.class_targets_v), np.argmax(out[:, :3] - out[:, 3:], 1))
    gate = make_task("xor", complementary_outputs=True, target_on_v=0.6, target_off_v=0.2)
    np.testing.assert_allclose(gate.class_targets_v, [[0.2, 0.6], [0.6, 0.2]])
    assert make_task("iris").n_outputs == 3  # off by default


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "iris", "decoder": "argmax"}, "complementary_outputs gives two"),
    ({"name": "linear_regression"}, "needs a classification task"),
])
def test_complementary_outputs_errors(kwargs, message):
    with pytest.raises(TaskError, match=message):
        make_task(complementary_outputs=True, **kwargs)
