"""A DNPU surrogate: a fitted MLP that serves as the device model of a twin.

The field's practice (docs/algorithms.md, section 6): sample a real DNPU with slow
triangle waves of incommensurate frequencies over the allowed electrode
ranges (:func:`labtrain.kinds.dnpu.characterize.characterize`), fit a multilayer
perceptron from the activation-electrode voltages to the output current
(:func:`labtrain.kinds.dnpu.characterize.fit_surrogate`), and use it in place of the
device: ``DNPUChip(SurrogateDNPU.load(path))`` is "the surrogate as a twin".

:class:`SurrogateDNPU` implements :class:`~labtrain.kinds.dnpu.layout.DNPUModel`
with a vectorised numpy forward pass (no scikit-learn needed to use it):

``current_a(v) = y_offset_a + y_scale_a * MLP((v - x_offset_v) / x_scale_v)``

with ReLU hidden layers and a linear output, and its exact Jacobian
(:meth:`SurrogateDNPU.jacobian_a`, the chain rule through the layers), so a
chip over a surrogate offers ``reference_gradient``.  It is saved as one HDF5
file (h5py): weights, biases, scalers, the device's layout (electrode ranges,
roles, gain, clipping) and provenance (source snapshot, sample count, rates,
test RMSE, labtrain version).  Published models of real devices in other
layouts (the Twente group's ``.npz`` and PyTorch checkpoints) are read by
:mod:`labtrain.kinds.dnpu.surrogate_npz`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from labtrain.kinds.dnpu.layout import DNPULayout

__all__ = ["SurrogateDNPU", "ACTIVATIONS", "FORMAT"]

#: file-format tag and version written to every surrogate file
FORMAT = ("labtrain-dnpu-surrogate", 1)

ACTIVATIONS = {
    "relu": lambda z: np.maximum(z, 0.0),
    "tanh": np.tanh,
    "logistic": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "identity": lambda z: z,
}

#: derivative of every activation, as a function of its input ``z`` and output ``a``
_SLOPES = {
    "relu": lambda z, a: (z > 0.0).astype(float),
    "tanh": lambda z, a: 1.0 - a * a,
    "logistic": lambda z, a: a * (1.0 - a),
    "identity": lambda z, a: np.ones_like(z),
}


class SurrogateDNPU:
    """MLP surrogate of a DNPU's output current (a :class:`~labtrain.kinds.dnpu.layout.DNPUModel`).

    Parameters
    ----------
    weights : sequence of ndarray
        Layer matrices, ``weights[0]`` of shape ``(n_electrodes, h1)``, ..., last ``(h_L, 1)``.
    biases : sequence of ndarray
        Layer offsets, ``(h1,)``, ..., ``(1,)``.
    x_offset_v, x_scale_v : ndarray, shape (n_electrodes,)
        Input scaling: the network sees ``(v - x_offset_v) / x_scale_v``.
    y_offset_a, y_scale_a : float
        Output scaling: current ``= y_offset_a + y_scale_a * network output``.
    layout : DNPULayout
        The characterised device's electrode ranges, roles, gain and clipping.
    activation : str
        Hidden-layer activation (``relu``, ``tanh``, ``logistic``, ``identity``).
    provenance : dict, optional
        How the surrogate was made (JSON-serialisable).
    """

    def __init__(self, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], x_offset_v: np.ndarray,
                 x_scale_v: np.ndarray, y_offset_a: float, y_scale_a: float, layout: DNPULayout, *,
                 activation: str = "relu", provenance: dict | None = None) -> None:
        self.weights = [np.ascontiguousarray(w, dtype=float) for w in weights]
        self.biases = [np.ascontiguousarray(b, dtype=float).reshape(-1) for b in biases]
        if not self.weights or len(self.weights) != len(self.biases):
            raise ValueError(f"need one bias per weight matrix, got {len(self.weights)} and {len(self.biases)}")
        n_in = layout.n_electrodes
        width = n_in
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            if w.ndim != 2 or w.shape[0] != width or b.shape != (w.shape[1],):
                raise ValueError(f"layer {k}: weights {w.shape} / bias {b.shape} do not follow a width of {width}")
            width = w.shape[1]
        if width != 1:
            raise ValueError(f"the last layer must have one output, got {width}")
        self.x_offset_v = np.asarray(x_offset_v, float).reshape(n_in)
        self.x_scale_v = np.asarray(x_scale_v, float).reshape(n_in)
        if np.any(self.x_scale_v <= 0):
            raise ValueError("x_scale_v must be > 0")
        self.y_offset_a = float(y_offset_a)
        self.y_scale_a = float(y_scale_a)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.activation = activation
        self.layout = layout
        self.n_electrodes = n_in
        self.provenance = dict(provenance or {})

    # ------------------------------------------------------------ model
    @property
    def hidden_layer_sizes(self) -> tuple[int, ...]:
        return tuple(w.shape[1] for w in self.weights[:-1])

    def current_a(self, electrode_v: np.ndarray, **_: Any) -> np.ndarray:
        """Output current (A, before the amplifier clips) for voltages ``(..., n_electrodes)``; shape ``(...)``.

        Extra keyword arguments (e.g. a solver's warm start) are ignored.
        """
        v = np.asarray(electrode_v, float)
        if v.shape[-1:] != (self.n_electrodes,):
            raise ValueError(f"electrode_v must end in {self.n_electrodes} electrodes, got shape {v.shape}")
        lead = v.shape[:-1]
        h = (v.reshape(-1, self.n_electrodes) - self.x_offset_v) / self.x_scale_v
        act = ACTIVATIONS[self.activation]
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            h = act(h @ w + b)
        out = h @ self.weights[-1] + self.biases[-1]
        return (self.y_offset_a + self.y_scale_a * out[:, 0]).reshape(lead)

    def jacobian_a(self, electrode_v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Output current ``(...)`` (A) and its exact gradient ``dI/dV`` ``(..., n_electrodes)`` (A/V).

        Forward-mode chain rule through the layers (a ReLU's slope is taken as 0
        at exactly 0, PyTorch's convention).  Before the amplifier clips: the
        chip zeroes the Jacobian where the current is clipped.
        """
        v = np.asarray(electrode_v, float)
        if v.shape[-1:] != (self.n_electrodes,):
            raise ValueError(f"electrode_v must end in {self.n_electrodes} electrodes, got shape {v.shape}")
        lead = v.shape[:-1]
        h = (v.reshape(-1, self.n_electrodes) - self.x_offset_v) / self.x_scale_v
        act, slope = ACTIVATIONS[self.activation], _SLOPES[self.activation]
        jac = np.broadcast_to(np.diag(1.0 / self.x_scale_v), (len(h), self.n_electrodes, self.n_electrodes))
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            z = h @ w + b
            h = act(z)
            jac = (jac @ w) * slope(z, h)[:, None, :]                       # (N, n_electrodes, width)
        out = h @ self.weights[-1] + self.biases[-1]
        current = self.y_offset_a + self.y_scale_a * out[:, 0]
        grad = self.y_scale_a * (jac @ self.weights[-1])[..., 0]
        return current.reshape(lead), grad.reshape(lead + (self.n_electrodes,))

    def snapshot(self) -> dict:
        return {"model": "SurrogateDNPU", "activation": self.activation,
                "hidden_layer_sizes": list(self.hidden_layer_sizes), "n_electrodes": self.n_electrodes,
                "layout": self.layout.to_dict(), "provenance": self.provenance}

    # ------------------------------------------------------------- files
    def save(self, path: str | Path) -> Path:
        """Write the surrogate to one HDF5 file (overwrites); returns the path."""
        import h5py

        from labtrain import __version__

        path = Path(path)
        with h5py.File(path, "w") as f:
            f.attrs["format"] = FORMAT[0]
            f.attrs["format_version"] = FORMAT[1]
            f.attrs["labtrain_version"] = __version__
            f.attrs["activation"] = self.activation
            f.attrs["n_layers"] = len(self.weights)
            f.attrs["layout"] = json.dumps(self.layout.to_dict())
            f.attrs["gain_ohm"] = self.layout.gain_ohm
            f.attrs["clip_a"] = self.layout.clip_a
            f.attrs["provenance"] = json.dumps(self.provenance, default=_json_default)
            g = f.create_group("network")
            for k, (w, b) in enumerate(zip(self.weights, self.biases)):
                g.create_dataset(f"weight_{k}", data=w)
                g.create_dataset(f"bias_{k}", data=b)
            s = f.create_group("scaling")
            s.create_dataset("x_offset_v", data=self.x_offset_v)
            s.create_dataset("x_scale_v", data=self.x_scale_v)
            s.attrs["y_offset_a"] = self.y_offset_a
            s.attrs["y_scale_a"] = self.y_scale_a
        return path

    @classmethod
    def load(cls, path: str | Path) -> "SurrogateDNPU":
        """Read a surrogate written by :meth:`save` (one-line ``ValueError`` for a file that is not one)."""
        import h5py

        path = Path(path)
        if not path.is_file():
            raise ValueError(f"surrogate file {path} does not exist")
        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            raise ValueError(f"{path} is not an HDF5 file: {exc}") from None
        with f:
            if f.attrs.get("format") != FORMAT[0]:
                raise ValueError(f"{path} is not a labtrain DNPU surrogate (format {f.attrs.get('format')!r})")
            if int(f.attrs["format_version"]) > FORMAT[1]:
                raise ValueError(f"{path}: surrogate format version {int(f.attrs['format_version'])} is newer than "
                                 f"this labtrain reads ({FORMAT[1]})")
            n = int(f.attrs["n_layers"])
            g = f["network"]
            weights = [g[f"weight_{k}"][()] for k in range(n)]
            biases = [g[f"bias_{k}"][()] for k in range(n)]
            s = f["scaling"]
            layout = DNPULayout.from_dict(json.loads(f.attrs["layout"]))
            return cls(weights, biases, s["x_offset_v"][()], s["x_scale_v"][()], float(s.attrs["y_offset_a"]),
                       float(s.attrs["y_scale_a"]), layout, activation=str(f.attrs["activation"]),
                       provenance=json.loads(f.attrs["provenance"]))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
