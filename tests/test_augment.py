"""Random-shift augmentation of image tasks (``[task] shift_px``): the shift itself, the encoding it repeats,
the run loop's use of it (seeded per step, so a killed and resumed run is the uninterrupted one) and the
refusals."""

from __future__ import annotations

import numpy as np
import pytest

from cli_helpers import assert_resumed_like, cli, run_contents, run_until_killed, write
from conftest import write_idx
from labtrain.build import build_setup
from labtrain.config import experiment_from_text
from labtrain.training.augment import ImageShift, shift_images
from labtrain.training.run import Run
from labtrain.training.tasks import TaskError, make_task


class _Zeros:
    """A generator stand-in that draws only zero shifts."""

    def integers(self, low, high, size):
        return np.zeros(size, int)


def _rolled(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Reference shift: roll, then blank the rows/columns that wrapped around."""
    out = np.roll(image, (dy, dx), axis=(0, 1))
    if dy > 0:
        out[:dy] = 0
    elif dy < 0:
        out[dy:] = 0
    if dx > 0:
        out[:, :dx] = 0
    elif dx < 0:
        out[:, dx:] = 0
    return out


def test_shift_images_moves_content_and_fills_zeros():
    rng = np.random.default_rng(1)
    images = rng.integers(1, 255, (30, 7, 7))
    dy, dx = rng.integers(-3, 4, (2, 30))
    got = shift_images(images, dy, dx)
    for k in range(30):
        np.testing.assert_array_equal(got[k], _rolled(images[k], dy[k], dx[k]))
    np.testing.assert_array_equal(shift_images(images, np.zeros(30, int), np.zeros(30, int)), images)
    down_left = shift_images(np.arange(16).reshape(1, 4, 4), np.array([1]), np.array([-1]))[0]
    np.testing.assert_array_equal(down_left[0], 0)          # content moved down: the top row is empty
    np.testing.assert_array_equal(down_left[1:, :3], np.arange(16).reshape(4, 4)[:3, 1:])


@pytest.mark.parametrize("kwargs", [{}, {"downsample": 2}, {"complementary_inputs": True, "bias_inputs_v": [0.3]},
                                    {"classes": [1, 7], "downsample": 4}])
def test_zero_shift_is_the_stored_encoding_bit_for_bit(kwargs):
    task = make_task("digits", shift_px=2, **kwargs)
    aug = task.augment
    assert isinstance(aug, ImageShift) and task.info["max_shift_px"] == 2
    index = np.arange(len(task.x_train))
    unshifted = ImageShift(aug.images, 0, aug.downsample, aug.encoding)
    np.testing.assert_array_equal(unshifted(index, _Zeros()), task.x_train)
    shifted = task.training_inputs(index, np.random.default_rng(0))
    assert shifted.shape == task.x_train.shape
    assert np.mean(np.any(shifted != task.x_train, axis=1)) > 0.5  # most images moved (1/25 draw no shift)


def test_shifted_inputs_are_the_encoded_shifted_images(tmp_path):
    """On MNIST files whose pixel range is [0, 255] everywhere the encoding is x / 255: an augmented input is
    then exactly the shifted image over 255, with the shift the step's generator drew."""
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    images[0], images[1] = 0, 255  # every pixel spans [0, 255] in the training split
    labels = np.arange(20) % 10
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images[:10])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels[:10])
    task = make_task("mnist", mnist_path=str(tmp_path), shift_px=3)
    np.testing.assert_allclose(task.x_train, images.reshape(20, -1) / 255.0)
    index = np.array([4, 2, 9, 2])
    got = task.training_inputs(index, np.random.default_rng(5))
    dy, dx = np.random.default_rng(5).integers(-3, 4, size=(2, 4))
    for k, i in enumerate(index):
        np.testing.assert_allclose(got[k].reshape(28, 28), _rolled(images[i].astype(float), dy[k], dx[k]) / 255.0)
    assert make_task("mnist", mnist_path=str(tmp_path)).augment is None


def test_shift_refusals():
    with pytest.raises(TaskError, match="shift_px = 2 shifts images; task xor has none"):
        make_task("xor", shift_px=2)
    with pytest.raises(TaskError, match="shift_px = 8 must be below the image side 8"):
        make_task("digits", shift_px=8)


EXPERIMENT = """\
[experiment]
name = "digits_shift"
[chip]
type = "nonreciprocal"
hidden_layers = [12]
[task]
name = "digits"
classes = [0, 1, 2]
shift_px = 1
[learning]
rule = "aep"
beta = 0.01
centred = true
learning_rate = 0.01
[run]
epochs = 2
batch_size = 16
eval_every = 10
"""


def test_run_trains_on_shifted_batches_seeded_per_step(tmp_path):
    setup = build_setup(experiment_from_text(EXPERIMENT, tmp_path / "exp.toml"))
    task = setup.task
    run = Run(setup.chip, setup.estimator, setup.optimizer, task, epochs=2, batch_size=16, seed=3)
    x5, t5 = run.batch(5)
    again, _ = run.batch(5)
    np.testing.assert_array_equal(x5, again)  # a function of (seed, step) only: what resume relies on
    x6, _ = run.batch(6)
    assert not np.array_equal(x5, x6)
    # the batch's targets are those of unshifted examples whose shifted images these are
    epoch, k = divmod(5, run.steps_per_epoch)
    order = np.random.default_rng([3, 3, epoch]).permutation(len(task.x_train))
    idx = order[k * 16:(k + 1) * 16]
    np.testing.assert_array_equal(t5, task.t_train[idx])
    assert np.any(x5 != task.x_train[idx])
    setup.chip.close()


def test_augmented_run_killed_and_resumed_equals_the_uninterrupted_run(tmp_path, capsys):
    f = write(tmp_path, EXPERIMENT)
    assert cli(["run", f, "--out", tmp_path / "ref", "-q"], capsys)[0] == 0
    (ref_path,) = (tmp_path / "ref").glob("*.h5")
    killed = run_until_killed(f, tmp_path / "killed", at_least=20)
    code, _, err = cli(["resume", killed, "-q"], capsys)
    assert code == 0, err

    assert_resumed_like(run_contents(killed), run_contents(ref_path))


@pytest.mark.parametrize("text, needles", [
    ('[task]\nname = "xor"\nshift_px = 2\n', ["[task] shift_px = 2", "'xor' has none", "digits and mnist"]),
    ('[task]\nname = "digits"\nshift_px = 8\n', ["[task] shift_px = 8 must be below the image side 8"]),
    ('[task]\nname = "digits"\nshift_px = -1\n', ["[task]", "shift_px = -1", "[0, 27]"]),
])
def test_bad_shift_is_one_line_error_in_check_and_run(tmp_path, capsys, text, needles):
    base = EXPERIMENT.replace('[task]\nname = "digits"\nclasses = [0, 1, 2]\nshift_px = 1\n', text)
    f = write(tmp_path, base)
    for command in (["check", f], ["run", f, "--out", tmp_path / "runs", "-q"]):
        code, out, err = cli(command, capsys)
        assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err, (command, err)
        for needle in needles:
            assert needle in err, (needle, err)
    assert not (tmp_path / "runs").exists()


def test_check_names_the_augmentation(tmp_path, capsys):
    code, out, err = cli(["check", write(tmp_path, EXPERIMENT)], capsys)
    assert code == 0, err
    assert "training images shifted by up to 1 px" in out
    code, out, _ = cli(["check", write(tmp_path, EXPERIMENT.replace("shift_px = 1\n", ""), "plain.toml")], capsys)
    assert code == 0 and "shifted" not in out
