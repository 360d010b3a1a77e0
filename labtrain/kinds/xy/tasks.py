"""Phase-encoded tasks for XY oscillator chips, and circular decoding.

Inputs and targets are phases: a Boolean ``0 / 1`` or a min-max scaled
feature becomes a phase in ``[-pi/2, +pi/2]`` (``input_phase``), a class
target is ``+target_phase`` (on) or ``-target_phase`` (off).  Two-class tasks
(the gates) have one output; others one output per class.  The returned
:class:`~labtrain.training.tasks.Task` uses the ``nearest_target`` decoder so the run
loop's accuracy works; for phases use :func:`decode_phases` /
:func:`phase_accuracy`, which measure distance on the circle.  (For
``+/-pi/2`` targets and phases in ``(-pi, pi]`` both decoders agree on
single-output tasks; with one output per class the circular rule is
``argmax sin(phi_o)`` and the Euclidean one ``argmax phi_o``.)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from labtrain.training.tasks import GATES, Task, TaskError, make_task

__all__ = ["phase_task", "PHASE_TASKS", "circular_distance", "decode_phases", "phase_accuracy"]

PHASE_TASKS = tuple(GATES) + ("iris", "digits", "mnist")


def phase_task(name: str, *, seed: int = 0, input_phase: float = np.pi / 2, target_phase: float = np.pi / 2,
               test_fraction: float = 0.3, decoder: str = "nearest_target", classes: Sequence[int] | None = None,
               downsample: int = 1, mnist_path: str = "", n_train: int = 60000, n_test: int = 10000,
               shift_px: int = 0) -> Task:
    """A gate (e.g. ``"xor"``), ``"iris"``, ``"digits"`` or ``"mnist"``; inputs in ``[-input_phase, input_phase]`` rad.

    Targets are ``+target_phase`` for the class (or the output's class) and
    ``-target_phase`` otherwise.  Gates train and test on the four input pairs.
    ``decoder="nearest_phase"`` makes :func:`labtrain.training.tasks.accuracy` decode on
    the circle (what the run loop uses); ``classes`` / ``downsample`` select
    digit classes and average-pool the 8x8 (digits) or 28x28 (MNIST) images;
    ``mnist_path`` / ``n_train`` / ``n_test`` are those of
    :func:`labtrain.training.tasks.make_task` (MNIST-10k when the folder holds
    only the t10k files: 8000 train / 2000 test, ``n_train`` keeps the first);
    ``shift_px`` augments the training images with random shifts (as there).
    MNIST has one output oscillator per digit; the circular decoder picks the
    class whose target phase vector is nearest (``argmax_o sin(phi_o)`` for
    ``+-pi/2`` targets).
    """
    name = name.lower()
    if name not in PHASE_TASKS:
        raise TaskError(f"unknown phase task {name!r}; choose from {PHASE_TASKS}")
    task = make_task(name, seed=seed, input_low_v=-input_phase, input_high_v=input_phase,
                     target_on_v=target_phase, target_off_v=-target_phase, decoder=decoder,
                     test_fraction=test_fraction, classes=classes, downsample=downsample, mnist_path=mnist_path,
                     n_train=n_train, n_test=n_test, shift_px=shift_px)
    task.info = {**task.info, "encoding": "phase", "input_phase_rad": float(input_phase),
                 "target_phase_rad": float(target_phase)}
    return task


def circular_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle between phases ``a`` and ``b``, in ``[0, pi]``."""
    return np.abs(np.angle(np.exp(1j * (np.asarray(a, float) - np.asarray(b, float)))))


def decode_phases(output_phases: np.ndarray, class_targets: np.ndarray) -> np.ndarray:
    """Class whose target phase vector is nearest on the circle: ``argmin_k sum_o (1 - cos(phi_o - tau_ko))``."""
    phi = np.asarray(output_phases, float)
    dist = np.sum(1.0 - np.cos(phi[:, None, :] - np.asarray(class_targets, float)[None, :, :]), axis=-1)
    return np.argmin(dist, axis=1)


def phase_accuracy(task: Task, output_phases: np.ndarray, labels: np.ndarray | None) -> float:
    """Fraction of examples whose circularly nearest class target is the label."""
    if labels is None or task.class_targets_v is None:
        return float("nan")
    return float(np.mean(decode_phases(output_phases, task.class_targets_v) == labels))
