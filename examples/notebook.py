# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # labtrain from a notebook
#
# Train a resistor network on XOR from an experiment file, read the run back as an
# `xarray.Dataset` (named dimensions, coordinates, units, settings as attributes), resume it
# for more epochs, and drive the same parts directly from Python.
#
# This file is a notebook in jupytext's percent format: open it in Jupyter with jupytext
# installed (`pip install jupytext`; *Open as notebook*), or convert it with
# `jupytext --to ipynb examples/notebook.py`.  It also runs as a plain script
# (`python examples/notebook.py`), which is how `tests/test_notebook.py` runs it.
# Run files go to a temporary folder unless `LABTRAIN_NOTEBOOK_OUT` names one.

# %%
import os
import tempfile
from pathlib import Path

import numpy as np

import labtrain as lt

print("labtrain", lt.__version__)
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path("examples").resolve()
OUT = Path(os.environ.get("LABTRAIN_NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="labtrain_notebook_"))

# %% [markdown]
# ## 1. A run from an experiment file
#
# `lt.open_run` validates the file, builds chip, rule, optimiser and task, and creates the run
# file.  The `with` block closes the run at the end: the chip goes to its safe state and the
# run file (and its lease) is released, so `labtrain resume`, `labtrain show` or another
# process can use it right away.  Overrides take the experiment file's section/key names.

# %%
overrides = {"run": {"epochs": 10, "eval_every": 5, "out_dir": str(OUT)}}
with lt.open_run(HERE / "xor_resistor_cl.toml", overrides) as run:
    result = run.run()
print(result.status, result.steps_done, "steps; test accuracy", result.final["test_accuracy"])
print("run file:", result.path)

# %% [markdown]
# ## 2. The run as an xarray Dataset
#
# `lt.load_run` reads a run file (any supported format version) or an exported `.nc` file.
# Every variable carries `units` and `long_name` from the units the chip and rule declare
# (here: loss in V^2, conductances in S); every dimension has a coordinate.  The experiment's
# settings are flat attributes (`learning.learning_rate`), next to the provenance of the run
# (labtrain version, git revision, Python and package versions, host, instruments).

# %%
ds = lt.load_run(result.path)
print(ds)
print("loss unit:", ds.step_loss.attrs["units"], "| parameter unit:", ds.parameters_final.attrs["units"])
print("learning rate:", ds.attrs["learning.learning_rate"], "| epochs:", ds.attrs["run.epochs"])
print("labtrain", ds.attrs["labtrain_version"], "| git", ds.attrs.get("git_revision", "-")[:10],
      "| numpy", ds.attrs["version_numpy"], "| host", ds.attrs["hostname"])

# %%
# Plain xarray from here on: the mean conductance after every recorded step, the evaluations.
mean_g = ds.parameter_history.mean("parameter")
print(mean_g.assign_coords(record=ds.parameter_history_step.values).to_series().tail())
print(ds[["eval_step", "eval_train_loss", "eval_test_accuracy"]].to_dataframe())
# With matplotlib installed: ds.step_loss.plot(); ds.parameters_final.plot.hist()

# %% [markdown]
# ## 3. Resume for more epochs
#
# Opening a run file resumes it from its last checkpoint; `epochs` sets the new length.
# Shuffling and noise are drawn from the seed and the step, so the continued run is the one
# an uninterrupted 15-epoch run would have been.

# %%
with lt.open_run(result.path, epochs=15) as run:
    resumed = run.run()
print(resumed.status, resumed.steps_done, "steps")
assert lt.load_run(result.path).sizes["step"] == resumed.steps_done

# %% [markdown]
# ## 4. The same parts from Python
#
# A network, an ideal chip, a task, a rule and an optimiser; `Run` without a run file keeps
# its metrics in memory.  The optimiser's step size is `learning_rate`, as in experiment files.

# %%
net = lt.lattice(4, 4, n_inputs=3, n_outputs=1)  # two XOR inputs and a 1 V bias input
chip = lt.IdealChip(net)
task = lt.make_task("xor", bias_inputs_v=(1.0,))
rule = lt.CoupledLearning(eta=0.1)
with lt.Run(chip, rule, lt.Adam(learning_rate=0.05), task, epochs=20, seed=0) as run:
    in_memory = run.run()
print("final loss", in_memory.step_loss[-1], "| conductances", chip.parameter_spec.unit,
      np.round(in_memory.parameters[:4] * 1e3, 3), "mS ...")

# %% [markdown]
# ## 5. Export for other tools
#
# `labtrain export RUN --format netcdf` on the command line; from Python:

# %%
(nc,) = lt.export_run(result.path, "netcdf", OUT / "xor.nc")
print(nc, nc.stat().st_size, "bytes")
print(lt.load_run(nc).step_loss.attrs)
