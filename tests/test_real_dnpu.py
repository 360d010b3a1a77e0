"""Surrogates of real DNPUs: the Twente ``.npz`` layout, PyTorch state dicts, the MLP Jacobian, the chip backends.

Tests that use the published 2019 checkpoint (``../shared/data/dnpu``) skip when it is absent; the file is
loaded from there, never copied into the project.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from labtrain.build import build_setup
from labtrain.chip.base import REFERENCE_GRADIENT
from labtrain.config import experiment_from_text
from labtrain.kinds.dnpu.layout import DNPULayout
from labtrain.kinds.dnpu.surrogate import SurrogateDNPU
from labtrain.kinds.dnpu.surrogate_npz import (CONTROL_ELECTRODES, DATA_ELECTRODES, DEFAULT_GAIN_OHM, load_npz_surrogate,
                                               load_surrogate, save_npz, surrogate_from_state_dict)
from labtrain.protocols.fidelity import compare_gradients
from labtrain.protocols.homodyne import HomodyneGradient

ROOT = Path(__file__).resolve().parents[1]
NPZ = ROOT.parent / "shared" / "data" / "dnpu" / "skynet_checkpoint3000_2019.npz"


@pytest.fixture(scope="module")
def real_npz() -> Path:
    if not NPZ.is_file():
        pytest.skip(f"shared data not available: {NPZ}")
    return NPZ


@pytest.fixture(scope="module")
def real(real_npz) -> SurrogateDNPU:
    return load_surrogate(real_npz)


def raw_forward_na(path: Path, v: np.ndarray) -> np.ndarray:
    """The archive's own recipe, written out independently: h = relu(h @ W.T + b), I_nA = y * amplification."""
    z = np.load(path)
    n = sum(1 for k in z.files if k.startswith("W"))
    h = v
    for i in range(n):
        h = h @ z[f"W{i}"].astype(float).T + z[f"b{i}"].astype(float)
        if i < n - 1:
            h = np.maximum(h, 0.0)
    return h[:, 0] * float(z["amplification"][0])


def random_mlp(activation: str, seed: int = 0, sizes=(7, 12, 9, 1)) -> SurrogateDNPU:
    rng = np.random.default_rng(seed)
    ws = [rng.normal(0, 1 / np.sqrt(a), (a, b)) for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [rng.normal(0, 0.3, b) for b in sizes[1:]]
    lay = DNPULayout((-1.2,) * 7, (0.6,) * 7, (1, 2), (0, 3, 4, 5, 6))
    return SurrogateDNPU(ws, bs, rng.uniform(-0.2, 0.2, 7), rng.uniform(0.5, 1.5, 7), 1e-9, 2e-8, lay,
                         activation=activation)


def central_fd(model, v: np.ndarray, h: float = 1e-6) -> np.ndarray:
    eye = np.eye(v.shape[-1])
    return np.stack([(model.current_a(v + h * eye[k]) - model.current_a(v - h * eye[k])) / (2 * h)
                     for k in range(v.shape[-1])], axis=-1)


# ------------------------------------------------------------------ the published checkpoint
def test_npz_forward_layout_and_provenance(real, real_npz):
    z = np.load(real_npz)
    assert real.hidden_layer_sizes == (90,) * 6 and real.n_electrodes == 7 and real.activation == "relu"
    lay = real.layout
    assert lay.low_v == (-1.2,) * 5 + (-0.7,) * 2 and lay.high_v == (0.6,) * 5 + (0.3,) * 2
    np.testing.assert_allclose(lay.low_v, z["input_min_V"], atol=1e-6)
    assert lay.data_electrodes == DATA_ELECTRODES == (3, 4) and lay.control_electrodes == CONTROL_ELECTRODES
    assert lay.gain_ohm == DEFAULT_GAIN_OHM and lay.clip_a == pytest.approx(1e-6)   # +-10 V at 10 MV/A
    meta = json.loads(real_npz.with_suffix(".json").read_text())
    assert real.provenance["sha256"] == meta["npz_sha256"] and "SkyNEt" in real.provenance["name"]
    v = np.random.default_rng(0).uniform(lay.low_v, lay.high_v, (2000, 7))
    current_na = real.current_a(v) * 1e9
    np.testing.assert_allclose(current_na, raw_forward_na(real_npz, v), rtol=1e-9, atol=1e-9)
    # a real device's output: tens of nA typical, well inside the read-out
    assert 1.0 < np.percentile(np.abs(current_na), 90) < 200.0
    assert np.abs(current_na).max() < lay.clip_a * 1e9


def test_real_surrogate_jacobian_matches_finite_differences(real):
    v = np.random.default_rng(1).uniform(real.layout.low_v, real.layout.high_v, (40, 7))
    current, jac = real.jacobian_a(v)
    np.testing.assert_allclose(current, real.current_a(v), rtol=1e-12, atol=1e-20)
    fd = central_fd(real, v)
    err = np.linalg.norm(jac - fd, axis=1) / np.linalg.norm(fd, axis=1)
    assert np.median(err) < 1e-6 and np.mean(err < 1e-4) >= 0.9   # a ReLU kink inside the step is rare


def test_real_surrogate_as_ideal_and_twin_from_an_experiment_file(real_npz, tmp_path):
    text = f"""\
[chip]
type = "dnpu"
model = "surrogate"
surrogate_path = "{real_npz}"
[task]
name = "xor"
input_low_v = -1.2
input_high_v = 0.6
target_on_v = 0.05
target_off_v = -0.05
decoder = "nearest_target"
[learning]
rule = "hge"
optimizer = "sgd"
learning_rate = 0.1
[run]
epochs = 1
"""
    outs = {}
    for backend in ("ideal", "twin"):
        exp = experiment_from_text(text.replace("[run]", f'[backend]\nkind = "{backend}"\n[run]'),
                                   tmp_path / "real.toml")
        setup = build_setup(exp)
        chip = setup.chip
        try:
            assert REFERENCE_GRADIENT in chip.capabilities
            assert chip.parameter_labels() == ["e0", "e1", "e2", "e5", "e6"]
            x = setup.task.x_train
            outs[backend] = chip.measure(x).output_v[:, 0]
            grad = chip.reference_gradient(x, setup.task.t_train)
            assert grad.shape == (5,) and np.all(np.isfinite(grad))
        finally:
            chip.close()
    model = load_surrogate(real_npz)
    ideal_expected = model.current_a(model.layout.electrode_voltages(setup.task.x_train, 0.5 * (
        model.layout.control_low_v + model.layout.control_high_v))) * DEFAULT_GAIN_OHM
    np.testing.assert_allclose(outs["ideal"], ideal_expected, rtol=1e-12)
    # the twin: the same device behind the DAQ (16-bit ADC, 0.1 mV noise, averaged)
    np.testing.assert_allclose(outs["twin"], outs["ideal"], atol=1e-3)


def test_hge_agrees_with_the_exact_gradient_on_the_real_surrogate(real):
    from labtrain.kinds.dnpu.chip import DNPUChip

    chip = DNPUChip(real, real.layout)
    rng = np.random.default_rng(3)
    x = np.array([[-1.2, -1.2], [-1.2, 0.6], [0.6, -1.2], [0.6, 0.6]])
    cosines = []
    for _ in range(3):
        spec = chip.parameter_spec
        chip.set_parameters(rng.uniform(spec.lower + 0.05, spec.upper - 0.05))
        t = chip.measure(x).output_v + rng.normal(0, 0.05, (4, 1))
        exact = chip.reference_gradient(x, t)
        est = HomodyneGradient().estimate(chip, x, t).gradient
        cosines.append(compare_gradients(est, exact).cosine)
    assert min(cosines) > 0.999      # measured 0.99985 .. 0.99999


# ------------------------------------------------------------------ loaders without the shared data
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
def test_mlp_jacobian_matches_finite_differences(activation):
    model = random_mlp(activation)
    v = np.random.default_rng(2).uniform(-1.2, 0.6, (3, 5, 7))     # any leading shape
    current, jac = model.jacobian_a(v)
    assert current.shape == (3, 5) and jac.shape == (3, 5, 7)
    np.testing.assert_allclose(current, model.current_a(v), rtol=1e-12)
    np.testing.assert_allclose(jac, central_fd(model, v), rtol=1e-5, atol=1e-7 * np.abs(jac).max())


def write_archive(tmp_path: Path, seed: int = 0, **extra) -> tuple[Path, list, list]:
    rng = np.random.default_rng(seed)
    sizes = (7, 10, 10, 1)
    ws = [rng.normal(0, 0.5, (b, a)).astype(np.float32) for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [rng.normal(0, 0.1, b).astype(np.float32) for b in sizes[1:]]
    arrays = {**{f"W{i}": w for i, w in enumerate(ws)}, **{f"b{i}": b for i, b in enumerate(bs)},
              "input_min_V": np.array([-1.2] * 5 + [-0.7] * 2, np.float32),
              "input_max_V": np.array([0.6] * 5 + [0.3] * 2, np.float32),
              "amplification": np.array([100.0], np.float32),
              "output_clipping_nA": np.array([-np.inf, np.inf], np.float32), **extra}
    path = tmp_path / f"model{seed}.npz"
    np.savez(path, **arrays)
    return path, ws, bs


def test_npz_loader_state_dicts_and_roundtrip(tmp_path):
    path, ws, bs = write_archive(tmp_path)
    model = load_npz_surrogate(path)
    v = np.random.default_rng(4).uniform(model.layout.low_v, model.layout.high_v, (50, 7))
    np.testing.assert_allclose(model.current_a(v) * 1e9, raw_forward_na(path, v), rtol=1e-9, atol=1e-12)
    assert model.layout.low_v[0] == -1.2 and model.layout.high_v[-1] == 0.3    # float32 read back as written
    # SkyNEt staNNet state dict: Sequential keys, info with offset/amplitude and amplification
    skynet = {"0.weight": ws[0], "0.bias": bs[0], "2.weight": ws[1], "2.bias": bs[1], "4.weight": ws[2],
              "4.bias": bs[2]}
    info = {"activation": "ReLU", "loss": "MSE", "amplification": np.array([100.0]),
            "offset": np.array([-0.3] * 5 + [-0.2] * 2), "amplitude": np.array([0.9] * 5 + [0.5] * 2)}
    a = surrogate_from_state_dict(skynet, info)
    # brains-py: model_state_dict + info.electrode_info
    brains = {f"raw_model.{k}": w for k, w in skynet.items()}
    binfo = {"model_structure": {"activation": "relu"},
             "electrode_info": {"activation_electrodes": {"voltage_ranges": [[-1.2, 0.6]] * 5 + [[-0.7, 0.3]] * 2},
                                "output_electrodes": {"amplification": [100.0], "clipping_value": [-350.0, 350.0]}}}
    b = surrogate_from_state_dict(brains, binfo)
    for other in (a, b):
        np.testing.assert_allclose(other.current_a(v), model.current_a(v), rtol=1e-12)
        np.testing.assert_allclose(other.layout.low_v, model.layout.low_v, atol=1e-12)
    assert b.layout.clip_a == pytest.approx(350e-9) and a.layout.clip_a == pytest.approx(1e-6)
    again = load_npz_surrogate(save_npz(model, tmp_path / "again.npz"))
    np.testing.assert_allclose(again.current_a(v), model.current_a(v), rtol=1e-12)


def test_npz_loader_refuses_bad_files_in_one_line(tmp_path):
    path, _, _ = write_archive(tmp_path)
    path.with_suffix(".json").write_text(json.dumps({"npz_sha256": "0" * 64}))
    with pytest.raises(ValueError, match="SHA-256") as err:
        load_surrogate(path)
    assert "\n" not in str(err.value)
    bad = tmp_path / "bad.npz"
    np.savez(bad, W0=np.ones((3, 7)))
    with pytest.raises(ValueError, match="missing input_min_V"):
        load_surrogate(bad)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        load_surrogate(junk)
    with pytest.raises(ValueError, match="does not exist"):
        load_surrogate(tmp_path / "absent.npz")
    wide, _, _ = write_archive(tmp_path, seed=1, W2=np.ones((2, 10), np.float32), b2=np.ones(2, np.float32))
    with pytest.raises(ValueError, match="one output"):
        load_surrogate(wide)


def test_pytorch_file_without_torch_is_a_one_line_error(tmp_path):
    try:
        import torch  # noqa: F401
    except ImportError:
        f = tmp_path / "model.pt"
        f.write_bytes(b"\x80\x02}q\x00.")
        with pytest.raises(ValueError, match="needs torch") as err:
            load_surrogate(f)
        assert "\n" not in str(err.value)
    else:
        pytest.skip("torch is installed: the loader itself is tested by test_pytorch_state_dict_file")


def test_pytorch_state_dict_file(tmp_path):
    torch = pytest.importorskip("torch")
    path, ws, bs = write_archive(tmp_path)
    state = {"0.weight": ws[0], "0.bias": bs[0], "2.weight": ws[1], "2.bias": bs[1], "4.weight": ws[2],
             "4.bias": bs[2]}
    info = {"activation": "relu", "amplification": [100.0], "input_min_V": [-1.2] * 5 + [-0.7] * 2,
            "input_max_V": [0.6] * 5 + [0.3] * 2}
    f = tmp_path / "model.pt"
    torch.save({"state_dict": {k: torch.from_numpy(v) for k, v in state.items()}, "info": info}, f)
    model = load_surrogate(f)
    v = np.random.default_rng(5).uniform(model.layout.low_v, model.layout.high_v, (20, 7))
    np.testing.assert_allclose(model.current_a(v), load_npz_surrogate(path).current_a(v), rtol=1e-6)
