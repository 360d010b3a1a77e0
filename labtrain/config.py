"""Experiment files: TOML with sections [experiment], [chip], [backend], [task], [learning], [run].

Every key is declared once in :data:`SCHEMA` with its type, default, allowed
range or choices and a one-line description (the GUI builds its form from the
same table).  :func:`load_experiment` validates a file and raises
:class:`ConfigError` with a one-line message naming the file, the key, the bad
value and what is allowed; unknown keys get a did-you-mean.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labtrain import registry
from labtrain.instruments.bench_file import parse_instruments
from labtrain.kinds import BACKENDS, ChipKind
from labtrain.protocols.masks import MASK_MODES
from labtrain.schema import ConfigError, Field, check_value as _check_value, show as _show, suggest as _suggest
from labtrain.training.optim import OPTIMIZERS
from labtrain.training.tasks import DECODERS, TASKS

__all__ = ["ConfigError", "Field", "BASE_SCHEMA", "SCHEMA", "Experiment", "load_experiment", "parse_experiment",
           "BACKENDS", "chip_kinds", "chip_kind", "schema_for", "merged_schema", "CHIP_RULES", "CHIP_TYPES",
           "schema_markdown"]

KINDS_GROUP = "labtrain.kinds"


def chip_kinds() -> dict[str, ChipKind]:
    """Every installed chip kind (built-in and plugins), by ``[chip] type`` name."""
    return registry.load_all(KINDS_GROUP)


def chip_kind(name: str) -> ChipKind:
    """The installed kind ``name`` (raises :class:`~labtrain.registry.RegistryError`)."""
    return registry.load(KINDS_GROUP, name)


def schema_for(kind: str) -> dict[str, dict[str, Field]]:
    """The keys an experiment of ``[chip] type = kind`` may use: the shared ones plus the kind's own
    (and those of plugin rules that apply to it)."""
    spec = chip_kind(kind)
    out = {section: dict(keys) for section, keys in BASE_SCHEMA.items()}
    fragments = [spec.schema] + [r.schema for r in _plugin_rules(kind).values()]
    for frag in fragments:
        for section, keys in frag.items():
            if section not in out:
                raise ConfigError(f"chip kind {kind!r} declares keys in an unknown section [{section}]")
            for key, field_ in keys.items():
                if key in BASE_SCHEMA.get(section, {}):
                    raise ConfigError(f"chip kind {kind!r} redeclares the shared key [{section}] {key}")
                out[section][key] = field_
    return out


def _plugin_rules(kind: str) -> dict[str, object]:
    """Rules added by plugins (entry-point group ``labtrain.rules``) that apply to ``kind``."""
    return {name: rule for name, rule in registry.load_all("labtrain.rules").items() if kind in rule.kinds}


def kind_rules(kind: str) -> dict[str, object]:
    """Rule name -> builder for ``kind``: its own (the first is the default), then plugin rules."""
    rules = dict(chip_kind(kind).rules)
    rules.update({name: rule.build for name, rule in _plugin_rules(kind).items()})
    return rules


def merged_schema() -> dict[str, dict[str, Field]]:
    """Every key of every installed kind (docs, GUI form); ``Field.types`` names the kinds a key applies to
    (``None``: all)."""
    out = {section: dict(keys) for section, keys in BASE_SCHEMA.items()}
    owners: dict[tuple[str, str], list[str]] = {}
    first: dict[tuple[str, str], Field] = {}
    for name in chip_kinds():
        for section, keys in schema_for(name).items():
            for key, field_ in keys.items():
                if key in BASE_SCHEMA[section]:
                    continue
                owners.setdefault((section, key), []).append(name)
                first.setdefault((section, key), field_)
    for (section, key), kinds in owners.items():
        out[section][key] = dataclasses.replace(first[(section, key)], types=tuple(kinds))
    return out


def __getattr__(name: str):
    # computed views (plugins may add kinds): SCHEMA, CHIP_RULES, CHIP_TYPES, RULES
    if name == "SCHEMA":
        return merged_schema()
    if name == "CHIP_RULES":
        return {k: tuple(kind_rules(k)) for k in chip_kinds()}
    if name == "CHIP_TYPES":
        return tuple(chip_kinds())
    if name == "RULES":
        return tuple(dict.fromkeys(r for k in chip_kinds() for r in kind_rules(k)))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


F = Field
#: Keys every chip kind shares; each kind adds its own fragment (``ChipKind.schema``).
BASE_SCHEMA: dict[str, dict[str, Field]] = {
    "experiment": {
        "name": F("str", "", "Run name (default: the file's stem)"),
        "description": F("str", "", "Free text stored with the run"),
    },
    "chip": {
        "type": F("str", registry.DEFAULT_KIND, "Kind of learning machine: resistor network, XY oscillator network, "
                  "non-reciprocal (layered rate) network, nonlinear resistive network (diodes, transistor edges) "
                  "or DNPU (dopant-network processing unit), or a kind a plugin installs (labtrain devices lists them)"),
    },
    "backend": {
        "kind": F("str", "ideal", "ideal (physics model), twin (simulated instruments) or hardware",
                  choices=BACKENDS),
        "rate_hz": F("float", 10_000.0, "Sample clock (Hz): the DAQ's on twin/hardware, the synthesised "
                     "waveforms' of the AC rules (fp, hge) on ideal chips", 0, 1e7, low_open=True),
        "settle_samples": F("int", 10, "twin/hardware: samples discarded at the start of each example's plateau",
                            0, 1_000_000),
        "average_samples": F("int", 10, "twin/hardware: samples averaged per example", 1, 1_000_000),
        "timeout_s": F("float", 10.0, "twin/hardware: longest wait for an instrument beyond the acquisition (s)",
                       0, 3600, low_open=True),
        "retries": F("int", 2, "twin/hardware: extra attempts after an instrument timeout or I/O error", 0, 100),
        "retry_wait_s": F("float", 0.0, "twin/hardware: pause between attempts (s)", 0, 600),
        "max_abs_v": F("float", 2.0, "twin/hardware: no AO channel may leave [-max_abs_v, max_abs_v] (V)",
                       0, 10, low_open=True),
        "max_slew_v_per_s": F("float", 1000.0, "twin/hardware: fastest allowed AO change (V/s)", 0, 1e9,
                              low_open=True),
        "ai_max_abs_v": F("float", 10.0, "twin/hardware: AI input range +- (V)", 0, 10, low_open=True),
        "pot_taps": F("int", 1024, "twin/hardware: taps of every digital pot", 2, 1_000_000),
        "pot_r_total_ohm": F("float", 1e5, "twin/hardware: end-to-end resistance of a pot (ohm)", 0, 1e12,
                             low_open=True),
        "pot_r_wiper_ohm": F("float", 50.0, "twin/hardware: wiper resistance (ohm)", 0, 1e9),
        "pot_r_end_ohm": F("float", 0.0, "twin/hardware: fixed resistance in series with every pot (ohm)", 0, 1e12),
        "pot_tolerance": F("float", 0.0, "twin: relative spread of the parts' true end-to-end resistance", 0, 0.5),
        "twin_noise_white_v": F("float", 1e-4, "twin: white noise on every AI sample (RMS, V)", 0, 10),
        "twin_noise_1f_v": F("float", 0.0, "twin: 1/f noise on every AI channel (RMS, V)", 0, 10),
        "twin_adc_bits": F("int", 16, "twin: ADC resolution (bits)", 4, 32),
        "twin_rc_time_s": F("float", 0.0, "twin: first-order settling time constant of every node (s)", 0, 10),
        "daq_device": F("str", "Dev1", "hardware: NI-DAQmx device name"),
        "pot_interface": F("str", "serial", "hardware: pot array behind a serial bridge or an FTDI SPI chain",
                           choices=("serial", "ftdi")),
        "pot_address": F("str", "", "hardware: serial port (e.g. /dev/ttyACM0) or FTDI URL (ftdi://ftdi:232h/1)"),
    },
    "wiring": {
        "read": F("str", "all", "AI channels on every node (local readouts) or on the outputs only",
                  choices=("all", "outputs")),
        "output_series_ohm": F("float", 10.0, "Resistance between an output's AO and its node when its switch "
                               "is closed (ohm; small: voltage clamp; large, ~1/beta_s: EP current nudge)", 0, 1e12),
        "input_ao": F("strs", [], "AO channel of every input node (default: <daq_device>/ao0, ao1, ...)"),
        "output_ao": F("strs", [], "AO channel behind every output's switch (default: the next AO channels)"),
        "output_switch_do": F("strs", [], "Digital line of every output's switch (default: port0/line0, ...)"),
        "node_ai": F("strs", [], "AI channel of every read node (default: <daq_device>/ai0, ai1, ...)"),
        "read_nodes": F("ints", [], "Nodes read by node_ai (default: all nodes or the outputs, see read)", 0, None),
        "pot_channels": F("ints", [], "Pot channel of every edge (default: edge e on channel e)", 0, None),
    },
    "task": {
        "name": F("str", "xor", "Task", choices=TASKS),
        "decoder": F("str", "", "regression, argmax or nearest_target (default: by task)", choices=("",) + DECODERS),
        "test_fraction": F("float", 0.3, "Fraction of examples held out for testing", 0, 1, low_open=True),
        "n_samples": F("int", 200, "Regression: number of examples", 2, 10_000_000),
        "n_features": F("int", 2, "Regression: number of input features", 1, 100_000),
        "n_targets": F("int", 1, "Regression: number of outputs", 1, 100_000),
        "classes": F("ints", [], "Classification: keep only these classes (default: all)", 0, 9),
        "downsample": F("int", 1, "Digits/MNIST: average-pool images by this factor", 1, 28),
        "shift_px": F("int", 0, "Digits/MNIST: shift every training image by a random whole number of pixels, up "
                      "to this many in x and in y (zero fill, before pooling), drawn anew at every training step; "
                      "evaluation sees the unshifted images (0 = no augmentation)", 0, 27),
        "mnist_path": F("str", "", "MNIST: folder with the four IDX files (relative paths: to the experiment file)"),
        "n_train": F("int", 60000, "MNIST: number of training images", 1, 60000),
        "n_test": F("int", 10000, "MNIST: number of test images", 1, 10000),
        "seed": F("int", 0, "Seed of the train/test split and of synthetic data", 0, 2**32 - 1),
    },
    "learning": {
        "rule": F("str", "", "Learning rule (default: the chip type's first rule: cl for resistor_network, xy_ep "
                  "for xy, aep for nonreciprocal, fp for nonlinear_resistor, hge for dnpu)"),
        "centred": F("bool", False, "EP/CL/xy_ep/aep/dyadic_ep/plain_ep/vf_ep: symmetric +/- nudge (bias O(beta^2) "
                     "instead of O(beta))"),
        "optimizer": F("str", "adam", "Optimiser (cl_clocked always uses tap_step)", choices=OPTIMIZERS),
        "learning_rate": F("float", 0.01, "Step size, in units of each parameter's allowed range", 0, 1e6, low_open=True),
        "lr_halflife_steps": F("float", 0.0, "sgd / momentum / adam: the step size halves every this many steps "
                               "(exponential decay; 0 = constant learning_rate)", 0, 1e9),
        "momentum": F("float", 0.9, "Momentum coefficient (below 1: at 1 the velocity never forgets a gradient)",
                      0, 1, high_open=True),
        "deadband": F("float", 0.0, "tap_step: normalised gradients below this do not move a pot", 0, 1e6),
        "update_fraction": F("float", 1.0, "Fraction of edges updated per step (partial updates)", 0, 1, low_open=True),
        "mask_mode": F("str", "fixed", "Partial updates, which edges: fixed (one random subset), random (a new "
                       "random subset each step), near_output (the edges fewest hops from an output; network "
                       "edges only), largest_gradient (each step the entries of largest gradient magnitude)",
                       choices=MASK_MODES),
    },
    "run": {
        "epochs": F("int", 20, "Passes over the training set", 1, 10_000_000),
        "batch_size": F("int", 0, "Examples per step (0 = full batch)", 0, 10_000_000),
        "seed": F("int", 0, "Seed of shuffling, initial conductances and read noise", 0, 2**32 - 1),
        "eval_every": F("int", 0, "Evaluate train/test every N steps (0 = once per epoch)", 0, 10_000_000),
        "eval_train_examples": F("int", 0, "Evaluate the train loss and accuracy on this many training examples, "
                                 "a fixed seeded subset (0 = all); the test set is always evaluated in full",
                                 0, 10_000_000),
        "checkpoint_every": F("int", 1, "Write a resumable checkpoint every N steps", 1, 10_000_000),
        "record_parameters_every": F("int", 1, "Store the parameter vector every N steps (0 = never)", 0, 10_000_000),
        "out_dir": F("str", "runs", "Folder for run files (relative to the working directory)"),
    },
}
SECTION_DOCS = {
    "experiment": "name and description", "chip": "the learning machine and its network",
    "backend": "what realises the chip", "task": "data and its encoding to volts",
    "learning": "learning rule and optimiser", "run": "training loop and storage",
    "wiring": "twin/hardware: which node and edge is on which instrument channel",
}


@dataclass
class Experiment:
    """A validated experiment: ``sections[section][key]`` holds every value (defaults filled)."""

    sections: dict[str, dict[str, Any]]
    text: str = ""
    path: Path | None = None
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self.sections[section]

    @property
    def name(self) -> str:
        return self.sections["experiment"]["name"] or (self.path.stem if self.path else "experiment")

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    def resolve(self, relative: str) -> Path:
        """A path from the file, resolved against the experiment file's folder."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.base_dir / p


def parse_experiment(data: dict[str, Any], source: str = "<experiment>",
                     overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Validate a parsed TOML mapping; return every section with defaults filled in."""
    merged: dict[str, dict[str, Any]] = {}
    data = dict(data)
    instruments = data.pop("instruments", None)
    for section, values in data.items():
        if section not in BASE_SCHEMA:
            raise ConfigError(f"{source}: unknown section [{section}]{_suggest(section, list(BASE_SCHEMA))}; "
                              f"sections are {', '.join(BASE_SCHEMA)}, instruments")
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: [{section}] must be a table of keys, got {_show(values)}")
        merged[section] = dict(values)
    for section, values in (overrides or {}).items():
        merged.setdefault(section, {}).update(values)
    kind = merged.get("chip", {}).get("type", BASE_SCHEMA["chip"]["type"].default)
    installed = chip_kinds()
    if not isinstance(kind, str) or kind not in installed:
        raise ConfigError(f"{source}: [chip] type = {_show(kind)}: expected one of {', '.join(installed)}"
                          + (_suggest(kind, list(installed)) if isinstance(kind, str) else ""))
    schema = schema_for(kind)
    every = merged_schema()
    result: dict[str, dict[str, Any]] = {}
    for section, fields in schema.items():
        given = merged.get(section, {})
        where = f"{source}: [{section}]"
        for key in given:
            if key in fields:
                continue
            owners = every.get(section, {}).get(key)
            if owners is not None and owners.types:
                raise ConfigError(f"{where} {key} applies to [chip] type {' / '.join(owners.types)}, "
                                  f"not to type = {kind!r}; remove it")
            raise ConfigError(f"{where} unknown key {key!r}{_suggest(key, list(fields))}; "
                              f"allowed keys: {', '.join(fields)}")
        result[section] = {k: (_check_value(where, k, given[k], spec) if k in given else spec.default)
                           for k, spec in fields.items()}
    _check_chip_type(result, merged, source)
    _cross_checks(result, source)
    result["instruments"] = _check_instruments(instruments, source)
    return result


def _check_instruments(table: Any, source: str) -> dict[str, dict[str, Any]]:
    """``[instruments.<name>]`` tables: each names a registered driver, its resource and options."""
    if table is None:
        return {}
    return parse_instruments(table, source)


def _check_chip_type(s: dict[str, dict[str, Any]], given: dict[str, dict[str, Any]], source: str) -> None:
    """Rule and backend must fit ``[chip] type`` (an empty rule becomes the kind's default); then the kind's
    own cross-checks."""
    spec = chip_kind(s["chip"]["type"])
    learning = s["learning"]
    rules = tuple(kind_rules(spec.name))
    if not learning["rule"]:
        learning["rule"] = rules[0]
    elif learning["rule"] not in rules:
        raise ConfigError(f"{source}: [learning] rule = {learning['rule']!r} does not fit [chip] type = "
                          f"{spec.name!r}; rules for {spec.name}: {', '.join(rules)}"
                          + _suggest(learning["rule"], list(rules)))
    backend = s["backend"]["kind"]
    if backend not in spec.backends:
        raise ConfigError(f"{source}: [backend] kind = {backend!r}: [chip] type = {spec.name!r} has no {backend} "
                          f"backend yet; available: {', '.join(spec.backends)}")
    if spec.check is not None:
        spec.check(s, given, source)


#: Longest acquisition of one example on twin/hardware (s): beyond it a run would sit for hours per example.
MAX_EXAMPLE_S = 600.0


def _cross_checks(s: dict[str, dict[str, Any]], source: str) -> None:
    """Checks of keys several kinds share (each applies only where the kind has the keys)."""
    chip, task, learning = s["chip"], s["task"], s["learning"]
    if "g_min_s" in chip and chip["g_min_s"] >= chip["g_max_s"]:
        raise ConfigError(f"{source}: [chip] g_min_s = {chip['g_min_s']!r} is not below g_max_s = {chip['g_max_s']!r}"
                          ": the conductances have no range to train in")
    if "input_low_v" in task and task["input_low_v"] == task["input_high_v"]:
        raise ConfigError(f"{source}: [task] input_low_v = input_high_v = {task['input_low_v']!r}: the inputs "
                          "would carry no information")
    if "target_on_v" in task and task["target_on_v"] == task["target_off_v"]:
        raise ConfigError(f"{source}: [task] target_on_v = target_off_v = {task['target_on_v']!r}: the targets "
                          "would not tell the classes apart")
    if "state_target_on" in task and task["state_target_on"] == task["state_target_off"]:
        raise ConfigError(f"{source}: [task] state_target_on = state_target_off = {task['state_target_on']!r}: the "
                          "targets would not tell the classes apart")
    backend = s["backend"]
    if backend["kind"] != "ideal":  # twin and hardware acquire in real time
        samples = backend["settle_samples"] + backend["average_samples"]
        seconds = samples / backend["rate_hz"]
        if seconds > MAX_EXAMPLE_S:
            raise ConfigError(f"{source}: [backend] rate_hz = {backend['rate_hz']!r}: one example's {samples} samples "
                              f"(settle_samples + average_samples) take {seconds:.3g} s on {backend['kind']}, more "
                              f"than {MAX_EXAMPLE_S:g} s; raise rate_hz")
        ramp_s = 2 * backend["max_abs_v"] / backend["max_slew_v_per_s"]
        if ramp_s > MAX_EXAMPLE_S:
            raise ConfigError(f"{source}: [backend] max_slew_v_per_s = {backend['max_slew_v_per_s']!r}: a ramp across "
                              f"+-max_abs_v = {backend['max_abs_v']!r} V takes {ramp_s:.3g} s, more than "
                              f"{MAX_EXAMPLE_S:g} s; raise max_slew_v_per_s")
    if task["name"] in ("linear_regression", "nonlinear_regression"):  # features, targets and their copies
        from labtrain.resources import check_memory

        n = task["n_samples"]
        check_memory(f"{source}: [task] n_samples = {n!r}, n_features = {task['n_features']!r}, n_targets = "
                     f"{task['n_targets']!r}", "the synthetic data set", 8 * 4 * n * (task["n_features"] +
                                                                                 task["n_targets"]))
    if "topology" in chip:  # the graph must fit in memory (terminal counts: at least one each)
        from labtrain.resources import BYTES_PER_EDGE, BYTES_PER_NODE, check_memory, graph_size

        nodes, edges = graph_size(chip, 1, 1)
        check_memory(f"{source}: [chip] topology = {chip['topology']!r}", f"a network of {nodes:,} nodes and "
                     f"{edges:,} edges", BYTES_PER_NODE * nodes + BYTES_PER_EDGE * edges)
    if chip.get("topology") == "edge_list" and not chip["edge_list"]:
        raise ConfigError(f"{source}: [chip] topology = 'edge_list' needs edge_list = \"path/to/edges.txt\"")
    if chip.get("topology") == "edge_list" and not (chip["inputs"] and chip["outputs"] and chip["grounds"]):
        raise ConfigError(f"{source}: [chip] topology = 'edge_list' needs explicit inputs, outputs and grounds")
    if task.get("shift_px") and task["name"] not in ("digits", "mnist"):
        raise ConfigError(f"{source}: [task] shift_px = {task['shift_px']!r} shifts images; task "
                          f"{task['name']!r} has none (digits and mnist do)")
    if task["name"] == "mnist" and not task["mnist_path"]:
        raise ConfigError(f"{source}: [task] name = 'mnist' needs mnist_path, a folder with the MNIST IDX files")
    if learning["lr_halflife_steps"] and learning["optimizer"] == "tap_step":
        raise ConfigError(f"{source}: [learning] lr_halflife_steps = {learning['lr_halflife_steps']!r}: tap_step "
                          "moves one device step per update, there is no step size to decay; remove it")


def load_experiment(path: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> Experiment:
    """Read and validate an experiment file (raises :class:`ConfigError`)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not an experiment file")
    if path.exists() and not path.is_file():
        raise ConfigError(f"{path}: not a regular file (an experiment file is a TOML text file)")
    if not path.is_file():
        raise ConfigError(f"{path}: experiment file not found")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return experiment_from_text(text, path, overrides)


def experiment_from_text(text: str, path: Path | None = None,
                         overrides: dict[str, dict[str, Any]] | None = None) -> Experiment:
    """Validate experiment-file text (``path`` names it in errors and anchors relative paths)."""
    source = str(path) if path else "<experiment>"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    sections = parse_experiment(data, source, overrides)
    return Experiment(sections, text, path, dict(overrides or {}))


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def schema_markdown() -> str:
    """The experiment-file reference (docs/experiment-file.md is generated from this)."""
    lines = ["# Experiment-file reference", "",
             "Generated from the shared keys of `labtrain.config` and every chip kind's schema fragment "
             "(`labtrain.config.schema_markdown()`); "
             "a test keeps this page in step with the code.", "",
             "An experiment file is TOML with the sections below; every key is optional (defaults shown). "
             "Unknown sections and keys are errors. Relative paths are resolved against the experiment file's "
             "folder, except `[run] out_dir` (the working directory).", ""]
    lines += ["`[chip] type` selects the learning machine; a key listed for some chip types only is an error "
              "with any other type. Rules per type (the first is the default): "
              + "; ".join(f"{kind}: {', '.join(kind_rules(kind))}" for kind in chip_kinds()) + ".", ""]
    for section, fields in merged_schema().items():
        lines += [f"## [{section}] — {SECTION_DOCS[section]}", "",
                  "| key | type | default | allowed | chip types | meaning |", "|---|---|---|---|---|---|"]
        for key, spec in fields.items():
            allowed = spec.allowed() if (spec.choices or spec.low is not None or spec.high is not None) else ""
            types = ", ".join(spec.types) if spec.types else "all"
            lines.append(f"| `{key}` | {spec.kind} | `{_toml(spec.default)}` | {allowed.replace('|', '/')} | {types} "
                         f"| {spec.doc} |")
        lines.append("")
    return "\n".join(lines)

