"""Learning tasks and their encoding to volts.

A :class:`Task` holds train and test examples already encoded for a chip:
input voltages (or currents) per example, target output voltages, and for
classification the integer labels plus the rule that decodes outputs into a
class.  Builders: Boolean gates, linear and nonlinear regression, Iris,
sklearn digits (optionally downsampled, subset of classes) and MNIST from IDX
files on disk.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from labtrain.training.augment import ImageShift, InputEncoding, average_pool

__all__ = ["Task", "TaskError", "GATES", "TASKS", "DECODERS", "make_task", "decode", "accuracy", "load_idx",
           "MNIST10K_SPLIT_SEED", "MNIST10K_TRAIN_FRACTION"]

#: Truth tables of the 16 two-input Boolean gates, for inputs (00, 01, 10, 11).
GATES: dict[str, tuple[int, int, int, int]] = {
    "false": (0, 0, 0, 0), "and": (0, 0, 0, 1), "a_and_not_b": (0, 0, 1, 0), "a": (0, 0, 1, 1),
    "not_a_and_b": (0, 1, 0, 0), "b": (0, 1, 0, 1), "xor": (0, 1, 1, 0), "or": (0, 1, 1, 1),
    "nor": (1, 0, 0, 0), "xnor": (1, 0, 0, 1), "not_b": (1, 0, 1, 0), "a_or_not_b": (1, 0, 1, 1),
    "not_a": (1, 1, 0, 0), "not_a_or_b": (1, 1, 0, 1), "nand": (1, 1, 1, 0), "true": (1, 1, 1, 1),
}
TASKS = tuple(GATES) + ("linear_regression", "nonlinear_regression", "iris", "digits", "mnist")
DECODERS = ("regression", "argmax", "nearest_target", "nearest_phase")
#: seed of the fixed permutation that splits the official MNIST test set into MNIST-10k train / test
MNIST10K_SPLIT_SEED = 10_000
#: fraction of MNIST-10k used for training (8,000 of 10,000 images)
MNIST10K_TRAIN_FRACTION = 0.8


class TaskError(ValueError):
    """A task cannot be built (bad setting, missing data file, empty split)."""


@dataclass
class Task:
    """Encoded examples of one learning task.

    Attributes
    ----------
    x_train, x_test : ndarray, shape (N, n_inputs)
        Chip inputs (volts, or amperes for current-driven inputs), bias inputs included.
    t_train, t_test : ndarray, shape (N, n_outputs)
        Target output voltages.
    y_train, y_test : ndarray of int or None
        Class labels (classification only).
    decoder : str
        ``regression``, ``argmax`` or ``nearest_target``.
    class_targets_v : ndarray, shape (n_classes, n_outputs) or None
        Target voltage vector of every class (for ``nearest_target``).
    test_is_train : bool
        The test set is the training set (Boolean gates: the 4 input cases), so
        there is no held-out accuracy: see :meth:`accuracy_names`.
    augment : callable or None
        ``augment(index, rng)`` -> freshly augmented inputs of training examples
        ``index`` (e.g. :class:`~labtrain.training.augment.ImageShift`); the run
        loop trains on them instead of ``x_train[index]``.  Evaluation always
        reads ``x_train`` / ``x_test``.
    """

    name: str
    x_train: np.ndarray
    t_train: np.ndarray
    x_test: np.ndarray
    t_test: np.ndarray
    y_train: np.ndarray | None = None
    y_test: np.ndarray | None = None
    decoder: str = "regression"
    class_targets_v: np.ndarray | None = None
    info: dict = field(default_factory=dict)
    test_is_train: bool = False
    augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None

    @property
    def n_inputs(self) -> int:
        return self.x_train.shape[1]

    @property
    def n_outputs(self) -> int:
        return self.t_train.shape[1]

    @property
    def is_classification(self) -> bool:
        return self.y_train is not None

    def training_inputs(self, index: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Inputs of training examples ``index`` for one training step: augmented when the task augments."""
        if self.augment is None:
            return self.x_train[index]
        return self.augment(index, rng)

    def accuracy_names(self) -> tuple[str, str | None]:
        """Labels of the train and test accuracy for summaries and tables.

        ``("train accuracy (4 cases)", None)`` for a Boolean gate, whose test set
        is its training set (no held-out accuracy to report);
        ``("train accuracy", "test accuracy")`` otherwise.
        """
        if self.test_is_train:
            return f"train accuracy ({len(self.x_train)} cases)", None
        return "train accuracy", "test accuracy"

    def describe(self) -> dict:
        return {"name": self.name, "n_train": len(self.x_train), "n_test": len(self.x_test),
                "n_inputs": self.n_inputs, "n_outputs": self.n_outputs, "decoder": self.decoder,
                "test_is_train": self.test_is_train, **self.info}


# ------------------------------------------------------------------ decoding
def decode(output_v: np.ndarray, decoder: str, class_targets_v: np.ndarray | None = None) -> np.ndarray:
    """Class index of every output vector."""
    if decoder == "argmax":
        return np.argmax(output_v, axis=1)
    if decoder in ("nearest_target", "nearest_phase"):
        if class_targets_v is None:
            raise ValueError(f"decoder {decoder!r} needs the class targets")
        targets = class_targets_v[None, :, :]
    if decoder == "nearest_target":
        dist = ((output_v[:, None, :] - targets) ** 2).sum(-1)
        return np.argmin(dist, axis=1)
    if decoder == "nearest_phase":  # outputs and targets are phases (rad): circular distance
        dist = (1.0 - np.cos(output_v[:, None, :] - targets)).sum(-1)
        return np.argmin(dist, axis=1)
    raise ValueError(f"decoder {decoder!r} does not give classes")


def accuracy(task: Task, output_v: np.ndarray, labels: np.ndarray | None) -> float:
    """Fraction classified correctly (NaN for regression tasks)."""
    if labels is None or task.decoder == "regression":
        return float("nan")
    return float(np.mean(decode(output_v, task.decoder, task.class_targets_v) == labels))


# ------------------------------------------------------------------ encoding
def _split(n: int, test_fraction: float, rng: np.random.Generator, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled (stratified when labels are given) train/test index split."""
    if labels is None:
        perm = rng.permutation(n)
        n_test = int(round(test_fraction * n))
        return perm[n_test:], perm[:n_test]
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(test_fraction * len(idx)))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _downsample(images: np.ndarray, side: int, factor: int) -> np.ndarray:
    """Average-pool square images (N, side*side) by ``factor``."""
    if factor > 1 and side % factor:
        raise TaskError(f"downsample factor {factor} does not divide the image side {side}")
    return average_pool(images, side, factor)


# ----------------------------------------------------------------- datasets
def load_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (MNIST format), optionally gzipped."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise TaskError(f"{path}: cannot read ({exc})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise TaskError(f"{path} is not an IDX file (bad magic number)")
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if data[2] not in dtypes:
        raise TaskError(f"{path}: unknown IDX element type 0x{data[2]:02x}")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=dtypes[data[2]], offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise TaskError(f"{path}: header says {shape} but the file holds {body.size} values")
    return body.reshape(shape)


def _idx_file(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def _find_idx(directory: Path, stem: str) -> Path:
    found = _idx_file(directory, stem)
    if found is None:
        raise TaskError(f"MNIST file {stem}[.gz] not found in {directory} (labtrain never downloads data; "
                        "point task.mnist_path at a folder with the IDX files: all four, or the two t10k files "
                        "for MNIST-10k)")
    return found


def _images_and_labels(directory: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    images = _find_idx(directory, f"{prefix}-images-idx3-ubyte")
    x = load_idx(images)
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise TaskError(f"{images}: holds an array of shape {x.shape}, MNIST images are (n, 28, 28)")
    x = x.reshape(-1, 784).astype(float)
    labels = _find_idx(directory, f"{prefix}-labels-idx1-ubyte")
    y = load_idx(labels)
    if y.ndim != 1:
        raise TaskError(f"{labels}: holds an array of shape {y.shape}, MNIST labels are (n,)")
    y = y.astype(int)
    if len(y) and (y.min() < 0 or y.max() > 9):
        bad = int(y[(y < 0) | (y > 9)][0])
        raise TaskError(f"{labels}: label {bad} is not a digit 0..9")
    if len(x) != len(y):
        raise TaskError(f"MNIST {prefix} files in {directory}: {len(x)} images but {len(y)} labels")
    return x, y


def _mnist(path: str, n_train: int, n_test: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
    """MNIST from IDX files: the official split, or MNIST-10k when only the t10k files are there.

    Returns ``(x_train, y_train, x_test, y_test, info)``; ``n_train`` / ``n_test``
    keep the first images of each split (in file order, or in the fixed
    permutation's order for MNIST-10k).
    """
    d = Path(path).expanduser()
    if not d.is_dir():
        raise TaskError(f"MNIST folder {d} does not exist")
    if _idx_file(d, "t10k-images-idx3-ubyte") is None:
        raise TaskError(f"MNIST file t10k-images-idx3-ubyte[.gz] not found in {d} (labtrain never downloads data; "
                        "point task.mnist_path at a folder with the t10k images and labels -- MNIST-10k -- and, for "
                        "the official split, train-images-idx3-ubyte and train-labels-idx1-ubyte)")
    xte, yte = _images_and_labels(d, "t10k")
    train_files = [_idx_file(d, f"train-{k}-idx{n}-ubyte") for k, n in (("images", 3), ("labels", 1))]
    if all(train_files):
        xtr, ytr = _images_and_labels(d, "train")
        info: dict[str, Any] = {"mnist_split": "official", "mnist_split_note": f"official {len(xtr)} train / {len(xte)} test files"}
    elif any(train_files):
        have, lack = ("images", "labels") if train_files[0] else ("labels", "images")
        raise TaskError(f"MNIST folder {d} has the train {have} but not the train {lack} file; give both (official "
                        "split) or neither (MNIST-10k from the t10k files)")
    else:
        perm = np.random.default_rng(MNIST10K_SPLIT_SEED).permutation(len(yte))
        n_tr = int(round(MNIST10K_TRAIN_FRACTION * len(yte)))
        if n_tr == 0 or n_tr == len(yte):
            raise TaskError(f"MNIST-10k: {len(yte)} test images cannot be split {MNIST10K_TRAIN_FRACTION:g} / "
                            f"{1 - MNIST10K_TRAIN_FRACTION:g}")
        xtr, ytr, xte, yte = xte[perm[:n_tr]], yte[perm[:n_tr]], xte[perm[n_tr:]], yte[perm[n_tr:]]
        info = {"mnist_split": "mnist-10k", "mnist_split_seed": MNIST10K_SPLIT_SEED,
                "mnist_split_note": f"MNIST-10k: the official test set split {len(xtr)} train / {len(xte)} test "
                                    f"by a fixed permutation (seed {MNIST10K_SPLIT_SEED})"}
    info["mnist_available"] = [len(xtr), len(xte)]
    return xtr[:n_train], ytr[:n_train], xte[:n_test], yte[:n_test], info


def make_task(
    name: str,
    *,
    seed: int = 0,
    input_low_v: float = 0.0,
    input_high_v: float = 1.0,
    target_on_v: float = 0.6,
    target_off_v: float = 0.2,
    bias_inputs_v: Sequence[float] = (),
    decoder: str | None = None,
    test_fraction: float = 0.3,
    n_samples: int = 200,
    n_features: int = 2,
    n_targets: int = 1,
    noise_v: float = 0.0,
    classes: Sequence[int] | None = None,
    downsample: int = 1,
    mnist_path: str = "",
    n_train: int = 60000,
    n_test: int = 10000,
    complementary_inputs: bool = False,
    complementary_outputs: bool = False,
    shift_px: int = 0,
) -> Task:
    """Build and encode a task by name (one of :data:`TASKS`).

    Features are min-max scaled to ``[input_low_v, input_high_v]`` using the
    training split; classes get one-hot target voltages ``target_on_v`` /
    ``target_off_v`` (one output per class), except two-class tasks, which use
    a single output whose target is ``on`` for class 1 and ``off`` for class 0.
    ``bias_inputs_v`` are constant voltages appended to every example.
    ``complementary_inputs`` drives a second input per feature at the mirrored
    voltage ``input_low_v + input_high_v - x`` (differential drive): a passive
    network can only form non-negative weighted averages of its inputs, and the
    mirrored copy lets it weight a feature negatively.
    ``complementary_outputs`` (classification only) gives every output a partner
    output whose target is the mirrored voltage ``target_on_v + target_off_v -
    t``: class ``k`` is read from the pair as the difference ``v_k - v_k'``, which
    lets a passive network weight its last hidden layer with both signs.  The
    decoder is then ``nearest_target``, which for mirrored pairs picks the class
    with the largest difference.
    ``shift_px`` (digits and MNIST only) makes the task augment its training
    images: every time an image is used for a training step it is shifted by a
    random whole number of pixels, up to ``shift_px`` in x and in y (zero fill,
    before pooling; :class:`~labtrain.training.augment.ImageShift`).
    """
    rng = np.random.default_rng([seed, 1])
    name = name.lower()
    if shift_px and name not in ("digits", "mnist"):
        raise TaskError(f"shift_px = {shift_px} shifts images; task {name} has none (digits and mnist do)")
    # mirrored copies and bias inputs (every task); image and Iris features also get a fitted scaling below
    encoding = InputEncoding(None, None, float(input_low_v), float(input_high_v), bool(complementary_inputs),
                             np.asarray(list(bias_inputs_v), float))
    y_tr = y_te = None
    if name in GATES:
        bits = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)
        x_tr = x_te = input_low_v + (input_high_v - input_low_v) * bits
        y_tr = y_te = np.array(GATES[name])
        n_classes = 2
        info: dict[str, Any] = {"gate": name, "evaluation": "train accuracy (4 cases): a gate's test set is its 4 "
                                                            "training cases"}
    elif name in ("linear_regression", "nonlinear_regression"):
        feats = rng.uniform(0, 1, (n_samples, n_features))
        if name == "linear_regression":
            # A passive network outputs weighted averages of its inputs and 0 V: make targets that it can reach.
            w = rng.dirichlet(np.ones(n_features + 1), size=n_targets)[:, :n_features]
            y = feats @ w.T
        else:
            y = 0.5 + 0.4 * np.sin(np.pi * feats.sum(axis=1, keepdims=True) / n_features) * np.ones((1, n_targets))
            y = 0.1 + 0.8 * (y - y.min()) / max(np.ptp(y), 1e-12)
        targets = input_low_v + (input_high_v - input_low_v) * y + rng.normal(0, noise_v, y.shape)
        tr, te = _split(n_samples, test_fraction, rng)
        x_all = input_low_v + (input_high_v - input_low_v) * feats
        x_tr, x_te = x_all[tr], x_all[te]
        t_tr, t_te = targets[tr], targets[te]
        info = {"n_features": n_features, "n_targets": n_targets, "noise_v": noise_v}
        if complementary_outputs:
            raise TaskError(f"complementary_outputs needs a classification task; {name} is a regression")
        return _finish(name, x_tr, t_tr, x_te, t_te, None, None, decoder or "regression", None, encoding, info)
    elif name in ("iris", "digits", "mnist"):
        if name == "iris":
            from sklearn.datasets import load_iris
            data = load_iris()
            feats, labels, side = data.data, data.target, 0
            is_train = None
        elif name == "digits":
            from sklearn.datasets import load_digits
            data = load_digits()
            feats, labels, side = data.data, data.target, 8
            is_train = None
        else:
            if not mnist_path:
                raise TaskError("task mnist needs mnist_path, a folder with the MNIST IDX files (all four, or the "
                                "two t10k files for MNIST-10k)")
            a, b, c, d, mnist_info = _mnist(mnist_path, n_train, n_test)
            feats, labels, side = np.vstack([a, c]), np.r_[b, d], 28
            is_train = np.r_[np.ones(len(a), bool), np.zeros(len(c), bool)]
        if shift_px and not 0 < shift_px < side:
            raise TaskError(f"shift_px = {shift_px} must be below the image side {side} of task {name}")
        images = feats
        if side:
            feats = _downsample(feats, side, downsample)
        if classes is not None:
            classes = [int(c) for c in classes]
            missing = sorted(set(classes) - set(np.unique(labels).tolist()))
            if missing:
                raise TaskError(f"task {name} has no class {missing[0]} (classes are {sorted(set(labels.tolist()))})")
            keep = np.isin(labels, classes)
            feats, images, labels = feats[keep], images[keep], np.searchsorted(np.array(sorted(classes)), labels[keep])
            is_train = None if is_train is None else is_train[keep]
        n_classes = int(labels.max()) + 1
        if is_train is not None:  # MNIST keeps its own train/test files
            tr, te = np.flatnonzero(is_train), np.flatnonzero(~is_train)
        else:
            tr, te = _split(len(labels), test_fraction, rng, labels)
        encoding = encoding.fitted(feats[tr])
        x_tr, x_te = encoding.scale(feats[tr]), encoding.scale(feats[te])  # _finish adds mirrors and bias inputs
        y_tr, y_te = labels[tr], labels[te]
        info = {"n_classes": n_classes, "downsample": downsample, "classes": classes}
        if name == "mnist":
            info.update(mnist_info)
    else:
        raise TaskError(f"unknown task {name!r}")
    if len(x_tr) == 0 or len(x_te) == 0:
        raise TaskError(f"task {name} has an empty train or test split ({len(x_tr)} / {len(x_te)} examples)")
    if n_classes == 2:
        class_targets = np.array([[target_off_v], [target_on_v]])
    else:
        class_targets = np.full((n_classes, n_classes), target_off_v)
        np.fill_diagonal(class_targets, target_on_v)
    dec = decoder or ("nearest_target" if n_classes == 2 or complementary_outputs else "argmax")
    if dec == "argmax" and n_classes == 2:
        raise TaskError("decoder argmax needs one output per class; two-class tasks use nearest_target")
    if complementary_outputs:
        if dec != "nearest_target":
            raise TaskError(f"decoder {dec} reads one output per class; complementary_outputs gives two (a "
                            "mirrored pair) per class: use nearest_target (the default)")
        class_targets = np.hstack([class_targets, target_on_v + target_off_v - class_targets])
    info["complementary_outputs"] = bool(complementary_outputs)
    task = _finish(name, x_tr, class_targets[y_tr], x_te, class_targets[y_te], y_tr, y_te, dec,
                   class_targets, encoding, info, test_is_train=name in GATES)
    if shift_px:
        pixels = images[tr].reshape(-1, side, side).astype(np.float32)  # MNIST/digits pixels are small integers: exact
        task.augment = ImageShift(pixels, int(shift_px), downsample, encoding)
        task.info = {**task.info, **task.augment.describe()}
    return task


def _finish(name, x_tr, t_tr, x_te, t_te, y_tr, y_te, decoder, class_targets, encoding: InputEncoding, info,
            test_is_train: bool = False) -> Task:
    """The task, with ``encoding``'s mirrored copies and bias inputs appended to the (already scaled) inputs."""
    if len(x_tr) == 0 or len(x_te) == 0:
        raise TaskError(f"task {name} has an empty train or test split ({len(x_tr)} / {len(x_te)} examples)")
    if decoder not in DECODERS:
        raise TaskError(f"unknown decoder {decoder!r}; choose from {DECODERS}")
    if decoder != "regression" and y_tr is None:
        raise TaskError(f"decoder {decoder!r} needs a classification task; {name} is a regression")
    info = {**info, "bias_inputs_v": encoding.bias_v.tolist(), "complementary_inputs": encoding.mirror}
    return Task(name, encoding.extras(x_tr), np.asarray(t_tr, float), encoding.extras(x_te),
                np.asarray(t_te, float), y_tr, y_te, decoder, class_targets, info, test_is_train)
