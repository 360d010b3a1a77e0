"""Published surrogate models of real DNPUs: the Twente ``.npz`` layout and SkyNEt / brains-py PyTorch files.

The University of Twente group fits an MLP to long measurements of one real
device and publishes it (SkyNEt, later brains-py).  labtrain reads such a
model into a :class:`~labtrain.kinds.dnpu.surrogate.SurrogateDNPU`, so it
serves as the device of the ideal chip or of the instrument twin
(``[chip] model = "surrogate"``, ``surrogate_path = "…/model.npz"``):

``.npz`` (numpy, no pickles)
    ``W0 .. W{L-1}``, ``b0 .. b{L-1}`` in PyTorch layout (``y = x @ W.T + b``),
    ReLU after every layer but the last, one output; ``input_min_V`` /
    ``input_max_V`` (the 7 electrode ranges, V, in the model's input order);
    ``amplification`` (nA per output unit: ``I_nA = y * amplification``);
    optionally ``output_clipping_nA`` (``[low, high]``, infinite = none).  A
    ``.json`` beside it (same stem) is read for provenance; if it names the
    archive's ``npz_sha256`` the archive must match it.
``.pt`` / ``.pth`` (PyTorch, needs ``torch``)
    A SkyNEt ``staNNet`` state dict (layers ``0.weight``, ``0.bias``, ``2.weight``
    …, with an ``info`` entry holding ``offset``/``amplitude`` and
    ``amplification``) or a brains-py file (``model_state_dict`` + ``info`` with
    ``electrode_info``).  Only tensors are unpickled (``weights_only``); a file
    that holds other Python objects is refused with the command that converts
    it, once and by a user who trusts it, to the ``.npz`` layout::

        python -m labtrain.kinds.dnpu.surrogate_npz model.pt model.npz

Electrode roles.  These models list 7 activation electrodes; for Boolean gates
the data inputs are model inputs **3 and 4** and the controls **0, 1, 2, 5, 6**
(:data:`DATA_ELECTRODES`, :data:`CONTROL_ELECTRODES`) -- the convention of the
group's gate searches with this family of surrogates (SkyNEt's
``input_gates = [3, 4]``).  Both data electrodes have the wide range
([-1.2, 0.6] V on the 2019 checkpoint), so Boolean levels -1.2 V / +0.6 V fit.

Read-out.  The output is the amplifier voltage ``gain_ohm * I``: default gain
10 MV/A (:data:`DEFAULT_GAIN_OHM`, the bench on which the Twente surrogates
were measured: 1 V out = 100 nA).  The amplifier clips at the file's
``output_clipping_nA`` where it gives a finite one, else at the +-10 V input
range of the DAQ at that gain (+-1 uA), beyond every current the 2019
checkpoint predicts (-333 .. +86 nA over its input box).

The weights of published models are the authors' (the 2019 checkpoint is
GPL-3.0): labtrain loads them from the user's path and never ships them.
"""

from __future__ import annotations

import hashlib
import json
import sys
import zipfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from labtrain.kinds.dnpu.layout import DNPULayout
from labtrain.kinds.dnpu.surrogate import SurrogateDNPU

__all__ = ["load_surrogate", "load_npz_surrogate", "load_torch_surrogate", "surrogate_from_pytorch_layers",
           "surrogate_from_state_dict", "save_npz", "convert_torch_to_npz", "DATA_ELECTRODES",
           "CONTROL_ELECTRODES", "DEFAULT_GAIN_OHM", "DAQ_RANGE_V", "TORCH_SUFFIXES"]

#: model inputs that carry a Boolean gate's data (the Twente convention for this family of surrogates)
DATA_ELECTRODES = (3, 4)
#: the other five model inputs: the trained control electrodes
CONTROL_ELECTRODES = (0, 1, 2, 5, 6)
#: transimpedance gain of the bench the Twente surrogates were measured on (V per A: 1 V = 100 nA)
DEFAULT_GAIN_OHM = 1e7
#: the DAQ's analog-input range (V) that bounds the read-out where a file gives no clipping
DAQ_RANGE_V = 10.0
#: file suffixes read as PyTorch checkpoints
TORCH_SUFFIXES = (".pt", ".pth")

_ACTIVATION_NAMES = {"relu": "relu", "tanh": "tanh", "sigmoid": "logistic", "logistic": "logistic",
                     "identity": "identity", "none": "identity"}


def load_surrogate(path: str | Path, **layout: Any) -> SurrogateDNPU:
    """Any surrogate file by its suffix: ``.npz`` (Twente arrays), ``.pt``/``.pth`` (PyTorch), else labtrain HDF5.

    ``layout`` keywords (``data_electrodes``, ``control_electrodes``, ``gain_ohm``,
    ``clip_a``, ``abort_abs_v``) apply to the ``.npz`` and PyTorch layouts;
    an HDF5 file from ``labtrain characterize`` brings its own layout.
    Raises ``ValueError`` (one line) for a file that is not a surrogate.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return load_npz_surrogate(path, **layout)
    if suffix in TORCH_SUFFIXES:
        return load_torch_surrogate(path, **layout)
    return SurrogateDNPU.load(path)


# ----------------------------------------------------------------------------- building
def surrogate_from_pytorch_layers(weights: Sequence[np.ndarray], biases: Sequence[np.ndarray],
                                  input_min_v: Sequence[float], input_max_v: Sequence[float],
                                  amplification: float, *, clipping_na: Sequence[float] | None = None,
                                  activation: str = "relu", data_electrodes: Sequence[int] = DATA_ELECTRODES,
                                  control_electrodes: Sequence[int] = CONTROL_ELECTRODES,
                                  gain_ohm: float = DEFAULT_GAIN_OHM, clip_a: float | None = None,
                                  abort_abs_v: float = 1.6, provenance: dict | None = None) -> SurrogateDNPU:
    """A :class:`SurrogateDNPU` from PyTorch-layout layers (``W`` of shape ``(out, in)``, ``y = x @ W.T + b``).

    Parameters
    ----------
    weights, biases : sequence of ndarray
        One per layer, input layer first; the last layer has one output.
    input_min_v, input_max_v : sequence of float
        Allowed voltage of every model input (V).
    amplification : float
        Output current in nA per unit of the network's output.
    clipping_na : (low, high), optional
        The amplifier's saturation in nA; infinite or absent: none given.
    activation : str
        Hidden-layer activation (``relu``, ``tanh``, ``sigmoid``, ``identity``).
    data_electrodes, control_electrodes : sequence of int
        Roles of the model inputs (default: data 3 and 4, controls 0, 1, 2, 5, 6).
    gain_ohm : float
        Transimpedance gain of the read-out (V/A).
    clip_a : float, optional
        Read-out saturation (A); default: ``clipping_na`` where finite, else
        ``DAQ_RANGE_V / gain_ohm``.
    abort_abs_v : float
        No electrode may ever see ``|V| >= abort_abs_v``.
    provenance : dict, optional
        Where the model comes from (kept in the chip's snapshot).
    """
    ws = [np.asarray(w, float) for w in weights]
    bs = [np.asarray(b, float).reshape(-1) for b in biases]
    if not ws or len(ws) != len(bs):
        raise ValueError(f"need one bias per weight matrix, got {len(ws)} weights and {len(bs)} biases")
    lo, hi = _decimal(input_min_v), _decimal(input_max_v)
    if lo.shape != hi.shape or ws[0].ndim != 2 or ws[0].shape[1] != lo.size:
        raise ValueError(f"input ranges list {lo.size} / {hi.size} electrodes, the first layer takes "
                         f"{ws[0].shape[1] if ws[0].ndim == 2 else '?'} inputs")
    amp = float(np.asarray(amplification, float).reshape(-1)[0])
    if not (np.isfinite(amp) and amp > 0):
        raise ValueError(f"amplification must be > 0 nA per output unit, got {amplification!r}")
    act = _ACTIVATION_NAMES.get(str(activation).lower())
    if act is None:
        raise ValueError(f"unknown activation {activation!r}; expected one of {sorted(_ACTIVATION_NAMES)}")
    if clip_a is None:
        clip = np.asarray([] if clipping_na is None else clipping_na, float).reshape(-1)
        finite = clip[np.isfinite(clip)]
        clip_a = float(np.max(np.abs(finite))) * 1e-9 if finite.size else DAQ_RANGE_V / float(gain_ohm)
    layout = DNPULayout(tuple(lo.tolist()), tuple(hi.tolist()), tuple(int(k) for k in data_electrodes),
                        tuple(int(k) for k in control_electrodes), gain_ohm=float(gain_ohm), clip_a=float(clip_a),
                        abort_abs_v=float(abort_abs_v))
    n = lo.size
    return SurrogateDNPU([w.T for w in ws], bs, np.zeros(n), np.ones(n), 0.0, amp * 1e-9, layout, activation=act,
                         provenance=provenance)


def _decimal(values: Any) -> np.ndarray:
    """Voltages as float64, single-precision values read back as the decimal they were written as
    (float32 -1.2 is -1.2000000477, which would put a -1.2 V input outside the range)."""
    a = np.asarray(_numpy(values)).reshape(-1)
    if a.dtype == np.float32:
        return np.array([float(np.format_float_positional(v, unique=True)) for v in a])
    return a.astype(float)


# ----------------------------------------------------------------------------- .npz
def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _companion_json(path: Path) -> dict:
    side = path.with_suffix(".json")
    if not side.is_file():
        return {}
    try:
        meta = json.loads(side.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{side}: not readable JSON ({str(exc).splitlines()[0]})") from None
    return meta if isinstance(meta, dict) else {}


def load_npz_surrogate(path: str | Path, **layout: Any) -> SurrogateDNPU:
    """Read a Twente-layout ``.npz`` surrogate (module docstring) and its ``.json`` beside it.

    ``layout`` keywords as in :func:`surrogate_from_pytorch_layers`.  Raises
    ``ValueError`` (one line) for a missing or malformed file, or one whose
    SHA-256 differs from the ``npz_sha256`` its JSON records.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"surrogate file {path} does not exist")
    meta = _companion_json(path)
    digest = _sha256(path)
    want = str(meta.get("npz_sha256", "")).split()[0] if meta.get("npz_sha256") else ""
    if want and want.lower() != digest:
        raise ValueError(f"{path}: SHA-256 {digest[:12]}… differs from the {want[:12]}… its .json records "
                         "(a different or damaged file)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"{path} is not a readable .npz archive ({str(exc).splitlines()[0]})") from None
    n_layers = 0
    while f"W{n_layers}" in arrays:
        n_layers += 1
    missing = [k for k in ("W0", "input_min_V", "input_max_V", "amplification") if k not in arrays]
    missing += [f"b{i}" for i in range(n_layers) if f"b{i}" not in arrays]
    if missing:
        raise ValueError(f"{path}: not a DNPU surrogate archive, missing {missing[0]} (expected W0.., b0.., "
                         "input_min_V, input_max_V, amplification)")
    for i in range(n_layers):
        w, b = arrays[f"W{i}"], arrays[f"b{i}"]
        if w.ndim != 2 or b.reshape(-1).shape != (w.shape[0],):
            raise ValueError(f"{path}: layer {i}: W{i} {w.shape} / b{i} {b.shape} are not a (out, in) matrix "
                             "and its bias")
        if i and w.shape[1] != arrays[f"W{i - 1}"].shape[0]:
            raise ValueError(f"{path}: layer {i} takes {w.shape[1]} inputs, layer {i - 1} gives "
                             f"{arrays[f'W{i - 1}'].shape[0]}")
    if arrays[f"W{n_layers - 1}"].shape[0] != 1:
        raise ValueError(f"{path}: the last layer must have one output, got {arrays[f'W{n_layers - 1}'].shape[0]}")
    provenance = {"format": "twente-npz", "path": str(path), "sha256": digest,
                  **{k: meta[k] for k in ("name", "provenance", "training_curve", "dopant", "input_electrodes",
                                          "amplification_meaning", "output_units") if k in meta}}
    try:
        return surrogate_from_pytorch_layers(
            [arrays[f"W{i}"] for i in range(n_layers)], [arrays[f"b{i}"] for i in range(n_layers)],
            arrays["input_min_V"], arrays["input_max_V"], arrays["amplification"],
            clipping_na=arrays.get("output_clipping_nA"), provenance=provenance, **layout)
    except ValueError as exc:
        raise ValueError(f"{path}: {str(exc).splitlines()[0]}") from None


def save_npz(model: SurrogateDNPU, path: str | Path) -> Path:
    """Write a ReLU/tanh/... :class:`SurrogateDNPU` without input/output offsets in the ``.npz`` layout."""
    if np.any(model.x_offset_v != 0) or np.any(model.x_scale_v != 1) or model.y_offset_a != 0:
        raise ValueError("only surrogates without input scaling or output offset have an .npz form")
    path = Path(path)
    lay = model.layout
    arrays = {**{f"W{i}": w.T for i, w in enumerate(model.weights)}, **{f"b{i}": b for i, b in enumerate(model.biases)},
              "input_min_V": np.asarray(lay.low_v), "input_max_V": np.asarray(lay.high_v),
              "amplification": np.array([model.y_scale_a * 1e9]),
              "output_clipping_nA": np.array([-lay.clip_a, lay.clip_a]) * 1e9}
    with path.open("wb") as fh:
        np.savez(fh, **arrays)
    return path


# ----------------------------------------------------------------------------- PyTorch
def _numpy(value: Any) -> Any:
    """A tensor (or anything with ``.numpy()``/``.cpu()``) as a numpy array; other values unchanged."""
    if hasattr(value, "detach"):
        value = value.detach()
    if hasattr(value, "cpu"):
        value = value.cpu()
    if hasattr(value, "numpy"):
        return np.asarray(value.numpy())
    return value


def _split_checkpoint(obj: Any) -> tuple[dict[str, np.ndarray], dict]:
    """``(state, info)`` of a SkyNEt (``state_dict`` with an ``info`` entry, or info keys mixed in) or a
    brains-py (``model_state_dict`` + ``info``) checkpoint."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"a PyTorch surrogate must be a dict, got {type(obj).__name__}")
    for key in ("model_state_dict", "state_dict"):
        if isinstance(obj.get(key), Mapping):
            state, info = obj[key], obj.get("info", {})
            break
    else:
        state = {k: v for k, v in obj.items() if k != "info" and ("weight" in k or "bias" in k)}
        info = obj.get("info") or {k: v for k, v in obj.items() if k != "info" and k not in state}
    return {str(k): _numpy(v) for k, v in state.items()}, dict(info or {})


def _info_ranges(info: Mapping) -> tuple[np.ndarray, np.ndarray]:
    electrodes = info.get("electrode_info", {}) or {}
    ranges = (electrodes.get("activation_electrodes", {}) or {}).get("voltage_ranges")
    if ranges is not None:
        r = np.asarray(_numpy(ranges), float).reshape(-1, 2)
        return r[:, 0], r[:, 1]
    if "input_min_V" in info and "input_max_V" in info:
        return np.asarray(_numpy(info["input_min_V"]), float), np.asarray(_numpy(info["input_max_V"]), float)
    if "offset" in info and "amplitude" in info:
        off = np.asarray(_numpy(info["offset"]), float).reshape(-1)
        amp = np.abs(np.asarray(_numpy(info["amplitude"]), float).reshape(-1))
        return off - amp, off + amp
    raise ValueError("its info gives no electrode ranges (electrode_info.activation_electrodes.voltage_ranges, "
                     "input_min_V/input_max_V or offset/amplitude)")


def surrogate_from_state_dict(state: Mapping[str, Any], info: Mapping[str, Any], **layout: Any) -> SurrogateDNPU:
    """A :class:`SurrogateDNPU` from a SkyNEt / brains-py state dict (arrays or tensors) and its ``info``.

    The linear layers are the 2-D ``*weight`` entries in the dict's order, each
    with the ``*bias`` of the same prefix; the activation is ``info["activation"]``
    (SkyNEt) or ``info["model_structure"]["activation"]`` (brains-py), ReLU if
    neither says; amplification ``info["amplification"]`` or
    ``info["electrode_info"]["output_electrodes"]["amplification"]``.  Batch
    normalisation is not supported.
    """
    state = {str(k): np.asarray(_numpy(v)) for k, v in state.items()}
    if any("running_mean" in k for k in state):
        raise ValueError("batch-normalised surrogates are not supported")
    weights, biases = [], []
    for key, value in state.items():
        if key.endswith("weight") and value.ndim == 2:
            bias_key = key[: -len("weight")] + "bias"
            if bias_key not in state:
                raise ValueError(f"layer {key!r} has no {bias_key!r}")
            weights.append(value)
            biases.append(state[bias_key])
    if not weights:
        raise ValueError("no linear layers (2-D '*weight' entries) in the state dict")
    structure = info.get("model_structure", {}) or {}
    activation = info.get("activation") or structure.get("activation") or "relu"
    outputs = (info.get("electrode_info", {}) or {}).get("output_electrodes", {}) or {}
    amplification = info.get("amplification", outputs.get("amplification"))
    if amplification is None:
        raise ValueError("its info gives no amplification (nA per output unit)")
    clipping = outputs.get("clipping_value", info.get("output_clipping_nA"))
    lo, hi = _info_ranges(info)
    provenance = dict(layout.pop("provenance", {}) or {})
    return surrogate_from_pytorch_layers(weights, biases, lo, hi, np.asarray(_numpy(amplification), float),
                                         clipping_na=None if clipping is None else np.asarray(_numpy(clipping), float),
                                         activation=str(activation), provenance=provenance, **layout)


def _torch():
    try:
        import torch
    except ImportError:
        raise ValueError("reading a PyTorch surrogate (.pt/.pth) needs torch (pip install torch), or convert it "
                         "to the .npz layout where torch is installed") from None
    return torch


def _torch_load(path: Path, trusted: bool) -> Any:
    torch = _torch()
    if not path.is_file():
        raise ValueError(f"surrogate file {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trusted)
    except Exception as exc:  # torch raises pickle, runtime and zip errors alike
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if trusted:
            raise ValueError(f"{path}: not a readable PyTorch file ({first})") from None
        raise ValueError(f"{path}: holds Python objects beyond tensors, which labtrain does not unpickle ({first}); "
                         f"if you trust the file, convert it once: python -m labtrain.kinds.dnpu.surrogate_npz "
                         f"{path} {path.with_suffix('.npz')}") from None


def load_torch_surrogate(path: str | Path, **layout: Any) -> SurrogateDNPU:
    """Read a SkyNEt / brains-py PyTorch checkpoint (tensors only; see the module docstring)."""
    path = Path(path)
    state, info = _split_checkpoint(_torch_load(path, trusted=False))
    try:
        return surrogate_from_state_dict(state, info, provenance={"format": "pytorch", "path": str(path),
                                                                  "sha256": _sha256(path)}, **layout)
    except ValueError as exc:
        raise ValueError(f"{path}: {str(exc).splitlines()[0]}") from None


def convert_torch_to_npz(source: str | Path, destination: str | Path) -> Path:
    """Convert a PyTorch checkpoint the user trusts (it is unpickled in full) to the ``.npz`` layout."""
    source = Path(source)
    state, info = _split_checkpoint(_torch_load(source, trusted=True))
    try:
        model = surrogate_from_state_dict(state, info)
    except ValueError as exc:
        raise ValueError(f"{source}: {str(exc).splitlines()[0]}") from None
    return save_npz(model, destination)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m labtrain.kinds.dnpu.surrogate_npz SOURCE.pt DEST.npz``: convert a trusted checkpoint."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m labtrain.kinds.dnpu.surrogate_npz SOURCE.pt DEST.npz", file=sys.stderr)
        return 2
    try:
        out = convert_torch_to_npz(args[0], args[1])
    except (ValueError, OSError) as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
