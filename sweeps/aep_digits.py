"""Table of the non-reciprocal rule sweeps (sweeps/aep_digits.toml, sweeps/aep_mnist.toml): test accuracy
after the first and the last epoch by network and rule, mean ± sample std (min–max) over seeds, and the time
of the training steps -- for digits the table of benchmarks/aep_digits_study.py, read from the sweep summary
(no run is repeated).

Usage::

    labtrain sweep sweeps/aep_digits.toml --out runs/aep_digits && python sweeps/aep_digits.py runs/aep_digits
    labtrain sweep sweeps/aep_mnist.toml --set task.mnist_path=PATH --out runs/aep_mnist --workers 1
    python sweeps/aep_mnist.py runs/aep_mnist
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

import numpy as np

from labtrain.overrides import flatten
from labtrain.training.sweep import read_manifest
from labtrain.training.sweep_summary import summary_dataset

RULE_LABEL = {"aep": "AEP", "dyadic_ep": "dyadic EP", "plain_ep": "EP", "vf_ep": "VF"}


def network_label(backward: bool, weight_init: str) -> str:
    """feedforward (no W_b), symmetric (W_b = W_f^T at the start) or asymmetric (independent W_b)."""
    return "feedforward" if not backward else str(weight_init)


def spread(values: np.ndarray, percent: bool = True) -> str:
    """``mean ± std (min–max)`` of the finite values (percent: x 100)."""
    v = np.asarray(values, float).ravel()
    v = v[np.isfinite(v)] * (100 if percent else 1)
    if len(v) == 0:
        return "-"
    if len(v) == 1:
        return f"{v[0]:.1f}"
    return f"{v.mean():.1f} ± {v.std(ddof=1):.1f} ({v.min():.1f}–{v.max():.1f})"


def after_first_epoch(ds, steps_per_epoch: int) -> np.ndarray | None:
    """Test accuracy of the evaluation at the end of epoch 1 (``None`` if the sweep did not evaluate there)."""
    steps = ds["eval_step"].values
    acc = ds["curve_test_accuracy"].values
    at = steps == steps_per_epoch - 1
    if not at.any():
        return None
    first = np.argmax(at, axis=-1)
    return np.where(at.any(axis=-1), np.take_along_axis(acc, first[..., None], axis=-1)[..., 0], np.nan)


def complete_axes(ds, fixed: dict):
    """Put back, with length 1, the network or rule dimension of a sweep run with that axis fixed on the
    command line (``--set learning.rule=aep``): its value comes from the sweep's fixed overrides."""
    if "backward" not in ds.dims:
        backward = bool(fixed.get("chip.backward", ds["backward"].values if "backward" in ds else True))
        weight_init = str(fixed.get("chip.weight_init", ds["weight_init"].values if "weight_init" in ds else "?"))
        ds = ds.drop_vars([v for v in ("backward", "weight_init") if v in ds.coords])
        ds = ds.expand_dims(backward=[backward]).assign_coords(weight_init=("backward", [weight_init]))
    if "rule" not in ds.dims:
        ds = ds.expand_dims(rule=[str(fixed.get("learning.rule", "?"))])
    return ds.transpose("backward", "rule", ...)


def table(ds, epochs: int) -> str:
    """Markdown table of a sweep whose members train ``epochs`` epochs (the sweep's ``run.epochs``)."""
    steps_per_epoch = int(round(float(np.nanmax(ds["steps_done"].values)) / max(epochs, 1)))
    first = after_first_epoch(ds, steps_per_epoch)
    later = epochs > 1  # a one-epoch sweep has one column of test accuracies
    head = ["network", "rule"] + (["test acc. after 1 epoch (%)"] if first is not None else [])
    head += [f"test acc. after {epochs} epochs (%)"] if later else []
    head += ["train acc. (%)", "train loss", "s / step", "s / epoch (training steps)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    done = ds["status"].values == "completed"
    net_dim, rule_dim = ds["status"].dims[0], ds["status"].dims[1]
    for i in range(ds.sizes[net_dim]):
        for j in range(ds.sizes[rule_dim]):
            at = (i, j)
            ok = done[at]
            sub = ds.isel({net_dim: i, rule_dim: j})
            pick = lambda name: np.where(ok, sub[name].values, np.nan)  # noqa: E731
            net = network_label(bool(ds["backward"].values[i]), str(ds["weight_init"].values[i]))
            rule = RULE_LABEL.get(str(ds["rule"].values[j]), str(ds["rule"].values[j]))
            loss = np.nanmean(pick("final_train_loss")) if ok.any() else np.nan
            step = np.nanmean(pick("step_time_s")) if ok.any() else np.nan
            cells = [net, rule] + ([spread(np.where(ok, first[at], np.nan))] if first is not None else [])
            cells += [spread(pick("final_test_accuracy"))] if later else []
            cells += [spread(pick("final_train_accuracy")), f"{loss:.4f}", f"{step:.3f}",
                      f"{step * steps_per_epoch:.0f}"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the sweep folder of sweeps/aep_digits.toml")
    args = parser.parse_args(argv)
    manifest = read_manifest(args.folder)
    experiment = flatten(tomllib.loads(manifest["experiment"]["text"]))  # the base file's settings ...
    fixed = {**experiment, **flatten(manifest["fixed"])}                  # ... under the sweep's fixed ones
    ds = complete_axes(summary_dataset(args.folder), fixed)
    print(ds.attrs.get("description", ""))
    print()
    print(table(ds, int(fixed.get("run.epochs", 1))))
    print("\nTest accuracy: mean ± sample std (min–max) over seeds (every seed counted; a member that did not "
          "complete is left out and shows as -).  s / step: mean time of a training step (estimator + optimiser; "
          "evaluation excluded); s / epoch: that times the steps per epoch.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
