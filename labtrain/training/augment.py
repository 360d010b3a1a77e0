"""Training-time augmentation of image tasks: random whole-pixel shifts.

With a few thousand training images (MNIST-10k trains on 8,000) a network
learns the training set long before it generalises; shifting every training
image by a random whole number of pixels each time it is used is the classic
remedy for that (LeCun et al. 1998 trained on distorted copies of MNIST).
:class:`ImageShift` re-encodes a batch of training images after shifting each
by ``(dy, dx)`` with ``|dy|, |dx| <= max_shift_px`` (uniform, zero fill), with
exactly the encoding the task applied to its stored inputs (average pooling,
min-max scaling fitted on the unshifted training set, mirrored copies, bias
inputs), so a zero shift returns the stored inputs bit for bit.  Evaluation
never sees shifted images.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

__all__ = ["InputEncoding", "ImageShift", "shift_images", "average_pool"]


def average_pool(images: np.ndarray, side: int, factor: int) -> np.ndarray:
    """Average-pool square images given as rows (N, side*side) by ``factor`` (which must divide ``side``)."""
    if factor <= 1:
        return images
    s = side // factor
    return images.reshape(-1, s, factor, s, factor).mean(axis=(2, 4)).reshape(-1, s * s)


@dataclass(frozen=True)
class InputEncoding:
    """Raw features -> chip inputs: min-max scaling, then mirrored copies and constant bias inputs.

    Attributes
    ----------
    feature_low, feature_span : ndarray, shape (n_features,)
        Per-feature minimum and range of the training set (range 1 where constant).
    low_v, high_v : float
        Encoded range; features outside the training range are clipped to it.
    mirror : bool
        Append ``low_v + high_v - x`` for every feature (differential drive).
    bias_v : ndarray, shape (n_bias,)
        Constant inputs appended to every example.
    """

    feature_low: np.ndarray | None
    feature_span: np.ndarray | None
    low_v: float
    high_v: float
    mirror: bool
    bias_v: np.ndarray

    def fitted(self, train: np.ndarray) -> "InputEncoding":
        """This encoding with its min-max scaling fitted on the training features ``train`` (N, n_features)."""
        lo, hi = train.min(axis=0), train.max(axis=0)
        return replace(self, feature_low=lo, feature_span=np.where(hi > lo, hi - lo, 1.0))

    def scale(self, features: np.ndarray) -> np.ndarray:
        """Features min-max scaled to ``[low_v, high_v]`` (unscaled when no scaling was fitted)."""
        if self.feature_low is None:
            return np.asarray(features, float)
        unit = np.clip((features - self.feature_low) / self.feature_span, 0.0, 1.0)
        return self.low_v + (self.high_v - self.low_v) * unit

    def extras(self, x: np.ndarray) -> np.ndarray:
        """``x`` with the mirrored copies and the bias inputs appended."""
        if self.mirror:
            x = np.hstack([x, self.low_v + self.high_v - x])
        if self.bias_v.size:
            x = np.hstack([x, np.broadcast_to(self.bias_v, (len(x), self.bias_v.size))])
        return np.ascontiguousarray(x, float)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return self.extras(self.scale(features))


def shift_images(images: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Shift square images (N, side, side) by whole pixels ``(dy[i], dx[i])``, filling with zeros.

    A positive ``dy`` moves the content down, a positive ``dx`` to the right.
    """
    images = np.asarray(images)
    n, side = len(images), images.shape[1]
    pad = int(max(np.abs(dy).max(initial=0), np.abs(dx).max(initial=0)))
    if pad == 0:
        return images.copy()
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad)))
    rows = pad - np.asarray(dy, int)[:, None] + np.arange(side)[None, :]
    cols = pad - np.asarray(dx, int)[:, None] + np.arange(side)[None, :]
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


@dataclass(frozen=True)
class ImageShift:
    """Random-shift augmentation of a task's training images.

    Attributes
    ----------
    images : ndarray, shape (N, side, side)
        The training images before pooling, in training-set order.
    max_shift_px : int
        Largest shift in either direction (pixels of the unpooled image).
    downsample : int
        Average-pooling factor applied after the shift.
    encoding : InputEncoding
        The task's encoding of pooled features.
    """

    images: np.ndarray
    max_shift_px: int
    downsample: int
    encoding: InputEncoding

    def __call__(self, index: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Encoded inputs of training examples ``index``, each shifted by its own random offset."""
        index = np.asarray(index, int)
        s = self.max_shift_px
        dy, dx = rng.integers(-s, s + 1, size=(2, len(index)))
        shifted = shift_images(self.images[index], dy, dx).astype(float)
        side = shifted.shape[1]
        return self.encoding(average_pool(shifted.reshape(len(index), side * side), side, self.downsample))

    def describe(self) -> dict:
        return {"augment": "random shift", "max_shift_px": self.max_shift_px}
