"""The run loop: events, pause/resume/stop at step boundaries, safe state on every exit path."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import labtrain as lt
from labtrain.training.store import RunStore
from labtrain.training.tasks import accuracy


def small_run(tmp_path=None, epochs=3, batch_size=2, listeners=(), chip=None, **kw):
    task = lt.make_task("and", bias_inputs_v=[1.0])
    net = lt.lattice(3, 3, n_inputs=task.n_inputs, n_outputs=1)
    chip = chip or lt.IdealChip(net)
    store = None
    if tmp_path is not None:
        store = RunStore.create(tmp_path / "r.h5", name="r", experiment_text="", overrides={}, source="",
                                snapshot=chip.snapshot(), task=task.describe(), rule="cl", backend="ideal",
                                seed=0, total_steps=epochs * 2, initial_parameters=chip.get_parameters())
    return lt.Run(chip, lt.CoupledLearning(eta=0.1), lt.Adam(learning_rate=0.05), task, epochs=epochs,
                  batch_size=batch_size, store=store, listeners=list(listeners), **kw)


class SafeStateSpy(lt.IdealChip):
    def __init__(self, *a, fail_at_measure=None, **kw):
        super().__init__(*a, **kw)
        self.safe_calls = 0
        self.measures = 0
        self.fail_at_measure = fail_at_measure

    def safe_state(self):
        self.safe_calls += 1

    def measure(self, *a, **kw):
        self.measures += 1
        if self.fail_at_measure is not None and self.measures >= self.fail_at_measure:
            raise OSError("instrument timeout (simulated)")
        return super().measure(*a, **kw)


def test_event_sequence():
    events = []
    run = small_run(listeners=[events.append])
    result = run.run()
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "stop"
    assert kinds.count("step") == 6 and kinds.count("epoch") == 3
    assert kinds.count("eval") == 4  # before training + once per epoch
    assert events[-1].data["status"] == "completed" == result.status
    epochs = [e.data["epoch"] for e in events if e.kind == "epoch"]
    assert epochs == [0, 1, 2]
    steps = [e for e in events if e.kind == "step"]
    assert [e.step for e in steps] == list(range(6))
    assert all(np.isfinite(e.data["loss"]) and e.data["output_v"].shape == (2, 1) for e in steps)


def test_stop_request_takes_effect_at_step_boundary(tmp_path):
    run = None

    def stop_after_three(event):
        if event.kind == "step" and event.step == 2:
            run.request_stop()

    run = small_run(tmp_path, epochs=5, listeners=[stop_after_three])
    result = run.run()
    assert result.status == "stopped" and result.steps_done == 3
    run.store.close()
    with RunStore.open(tmp_path / "r.h5") as store:
        assert store.attrs["status"] == "stopped"
        assert list(store.table("steps")["step"]) == [0, 1, 2]
        assert store.latest_checkpoint()[0] == 2


def test_pause_and_resume_from_another_thread():
    events = []
    run = small_run(epochs=40, batch_size=1, listeners=[events.append])
    chip = SafeStateSpy(run.chip.network)
    run.chip = chip
    run.request_pause()
    worker = threading.Thread(target=run.run)
    worker.start()
    deadline = time.time() + 10
    while "pause" not in [e.kind for e in events] and time.time() < deadline:
        time.sleep(0.01)
    assert run.paused and run.next_step == 0
    assert chip.safe_calls >= 1  # waiting in the safe state
    run.request_resume()
    worker.join(timeout=30)
    kinds = [e.kind for e in events]
    assert kinds.index("pause") < kinds.index("resume") < kinds.index("step")
    assert kinds[-1] == "stop" and events[-1].data["status"] == "completed"


def test_instrument_error_leaves_safe_state_and_keeps_completed_steps(tmp_path):
    task = lt.make_task("and", bias_inputs_v=[1.0])
    net = lt.lattice(3, 3, n_inputs=task.n_inputs, n_outputs=1)
    chip = SafeStateSpy(net, fail_at_measure=12)
    run = small_run(tmp_path, epochs=5, chip=chip)
    with pytest.raises(OSError, match="instrument timeout"):
        run.run()
    assert chip.safe_calls >= 1
    run.store.close()
    with RunStore.open(tmp_path / "r.h5") as store:
        assert store.attrs["status"] == "failed"
        assert "instrument timeout" in store.attrs["message"]
        done = list(store.table("steps")["step"])
        assert done == list(range(len(done))) and len(done) >= 1
        assert store.latest_checkpoint()[0] == done[-1]


def test_same_seed_same_result_and_batches_cover_epoch():
    a = small_run(epochs=4, batch_size=1, seed=7)
    b = small_run(epochs=4, batch_size=1, seed=7)
    np.testing.assert_array_equal(a.run().parameters, b.run().parameters)
    seen = np.vstack([a.batch(k)[0] for k in range(4)])  # one epoch of single examples
    assert sorted(map(tuple, seen.tolist())) == sorted(map(tuple, a.task.x_train.tolist()))


def test_train_evaluation_on_a_fixed_seeded_subset():
    """``eval_train_examples``: the train loss / accuracy of every evaluation is measured on one fixed subset
    drawn from the run's seed (the same at every evaluation and on resume); the test set stays whole."""
    task = lt.make_task("iris", bias_inputs_v=[1.0])
    net = lt.lattice(4, 4, n_inputs=task.n_inputs, n_outputs=task.n_outputs)

    def run(k, seed=0):
        return lt.Run(lt.IdealChip(net), lt.CoupledLearning(eta=0.1), lt.Adam(learning_rate=0.05), task, epochs=1,
                      batch_size=8, seed=seed, eval_train_examples=k)
    full, sub = run(0), run(20)
    assert len(full.eval_train_index) == len(task.x_train) and len(sub.eval_train_index) == 20
    idx = sub.eval_train_index
    assert len(set(idx.tolist())) == 20 and np.array_equal(idx, run(20).eval_train_index)
    assert not np.array_equal(idx, run(20, seed=1).eval_train_index)
    assert len(run(10_000).eval_train_index) == len(task.x_train)   # more than there are: all
    ev = sub.evaluate(0)
    out = sub.chip.measure(task.x_train[idx])
    assert ev["train_loss"] == pytest.approx(sub.estimator.measurement_loss(out, task.t_train[idx]))
    assert ev["train_accuracy"] == accuracy(task, out.output_v, task.y_train[idx])
    ev_full = full.evaluate(0)
    assert ev["test_loss"] == pytest.approx(ev_full["test_loss"])     # the test set is evaluated in full
    assert ev["train_loss"] != pytest.approx(ev_full["train_loss"])
