"""Instrument drivers as data: :class:`DriverSpec`, what an ``[instruments.<name>]`` table can name.

A driver spec says which port a driver serves (``"daq"``, ``"lockin"`` or
``"pots"``), how to open it from a resource string and options, which options
an experiment file may set (each a :class:`~labtrain.schema.Field`, checked
with :func:`~labtrain.schema.check_value`), which pip extra it needs, and how
to list what an opened port offers (:attr:`DriverSpec.channels`), which
:func:`labtrain.instruments.bench_file.check_bench` compares with the wiring
before any voltage is applied.

Built-in specs live next to their drivers (``labtrain.drivers.nidaq:DRIVER``,
``labtrain.drivers.lockin:SR830_DRIVER`` / ``SR860_DRIVER``,
``labtrain.drivers.potbridge:SERIAL_DRIVER`` / ``FTDI_DRIVER``) and are named in
``labtrain.registry.BUILTIN["labtrain.drivers"]``.  A plugin package adds its
own through the ``labtrain.drivers`` entry-point group::

    # my_lab/keithley.py
    from labtrain.instruments.drivers import DriverSpec
    from labtrain.schema import Field

    def _open(resource, options):
        return MySMUDAQ(resource, ao_channels=options["ao_channels"], ai_channels=options["ai_channels"],
                        nplc=options["nplc"])

    DRIVER = DriverSpec("keithley_smu", "daq", _open, "Two Keithley 2450 SMUs as a slow DAQ",
                        options={"nplc": Field("float", 1.0, "integration time (power-line cycles)", 0.01, 10)},
                        extra="", resource_doc="VISA resource of the first SMU")

    # pyproject.toml
    [project.entry-points."labtrain.drivers"]
    keithley_smu = "my_lab.keithley:DRIVER"

Bench keys
----------
Besides the options of the file, ``open`` receives what the bench needs from the
port, under the reserved names of :data:`BENCH_KEYS` (a file cannot set them):

* ``daq``: ``ao_channels``, ``ai_channels``, ``do_lines`` (tuples of channel names the
  wiring uses, device prefix resolved) and ``ai_range_v`` (``(low, high)`` V);
* ``pots``: ``n_channels`` (highest wired pot channel + 1);
* ``lockin``: none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from labtrain.schema import ConfigError, Field, check_value, show, suggest

__all__ = ["DriverSpec", "PORT_KINDS", "BENCH_KEYS", "load_driver", "default_channels", "DriverError",
           "drivers_markdown"]

#: the ports a bench is made of, in the order they are opened
PORT_KINDS = ("daq", "pots", "lockin")

#: option names ``open`` receives from the bench (never from the file), per port kind
BENCH_KEYS: dict[str, tuple[str, ...]] = {
    "daq": ("ao_channels", "ai_channels", "do_lines", "ai_range_v"),
    "pots": ("n_channels",),
    "lockin": (),
}

_FIELD_KINDS = ("str", "int", "float", "bool", "ints", "floats", "strs")


class DriverError(LookupError):
    """A driver name that is not installed or does not name a :class:`DriverSpec` (one-line message)."""


@dataclass(frozen=True)
class DriverSpec:
    """One instrument driver, as the registry and the experiment file see it.

    Attributes
    ----------
    name : str
        Name used in files (``driver = "nidaq"``) and in the registry.
    port : {"daq", "lockin", "pots"}
        The port the opened object implements (:mod:`labtrain.instruments.ports`); it is the
        instrument's role on the bench.
    open : callable ``(resource: str, options: dict) -> port``
        Opens the instrument.  ``options`` holds every declared option (file value or the
        field's default) plus the :data:`BENCH_KEYS` of the port kind.  Opening must not
        apply a voltage or move a pot.
    description : str
        One line for ``labtrain devices`` and error messages.
    options : mapping of str to Field
        Options an experiment file may give in ``options = { ... }``.
    extra : str
        The pip extra that installs the driver's packages (``"hardware"`` ->
        ``pip install -e '.[hardware]'`` in the labtrain checkout); empty when nothing extra is needed.
    channels : callable ``(port) -> dict``, optional
        What the opened device offers: for a DAQ ``{"ao": [...], "ai": [...], "do": [...],
        "ao_range_v": (lo, hi), "ai_range_v": (lo, hi), "product": str}`` (every channel of the
        *device*, not only the ones opened); for pots ``{"n_channels", "n_taps"}``; for a lock-in
        ``{"amplitude_range_v", "frequency_range_hz"}``.  Default: :func:`default_channels`.
    resource_doc : str
        What ``resource`` means for this driver (shown when it is missing or wrong).
    validate : callable ``(options: dict) -> None``, optional
        Cross-checks of the given options; raises ``ValueError`` with a one-line message.
    """

    name: str
    port: str
    open: Callable[[str, dict[str, Any]], Any]
    description: str
    options: Mapping[str, Field] = field(default_factory=dict)
    extra: str = "hardware"
    channels: Callable[[Any], dict[str, Any]] | None = None
    resource_doc: str = ""
    validate: Callable[[dict[str, Any]], None] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"DriverSpec name must be a non-empty string, got {self.name!r}")
        if self.port not in PORT_KINDS:
            raise ValueError(f"DriverSpec {self.name!r}: port = {self.port!r}; allowed: {', '.join(PORT_KINDS)}")
        if not callable(self.open):
            raise ValueError(f"DriverSpec {self.name!r}: open must be callable (resource, options) -> port")
        for key, spec in self.options.items():
            if not isinstance(spec, Field) or spec.kind not in _FIELD_KINDS:
                raise ValueError(f"DriverSpec {self.name!r}: option {key!r} must be a labtrain.schema.Field")
            if key in BENCH_KEYS[self.port] or key in ("driver", "resource", "options"):
                raise ValueError(f"DriverSpec {self.name!r}: option name {key!r} is reserved for the bench")

    # ------------------------------------------------------------------ options
    def check_options(self, given: Any, where: str) -> dict[str, Any]:
        """The file's ``options`` table checked against :attr:`options` (raises :class:`ConfigError`).

        ``where`` prefixes every message (``"exp.toml: [instruments.daq]"``).  Returns only the given
        options, converted (defaults are filled by :meth:`resolve_options`).
        """
        if not isinstance(given, dict):
            raise ConfigError(f"{where} options = {show(given)}: expected a table, e.g. options = {{ ... }}")
        allowed = list(self.options)
        out: dict[str, Any] = {}
        for key, value in given.items():
            if key in BENCH_KEYS[self.port]:
                raise ConfigError(f"{where} options.{key}: set by labtrain from the wiring, not in the file")
            if key not in self.options:
                listed = ", ".join(allowed) if allowed else "none"
                raise ConfigError(f"{where} options.{key}: driver {self.name!r} has no option {key!r}"
                                  f"{suggest(key, allowed)}; its options: {listed}")
            out[key] = check_value(where, f"options.{key}", value, self.options[key])
        if self.validate is not None:
            try:
                self.validate(dict(out))
            except ValueError as exc:
                raise ConfigError(f"{where} {str(exc).splitlines()[0]}") from None
        return out

    def resolve_options(self, given: Mapping[str, Any] | None = None,
                        bench: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Every option: field defaults, then ``bench`` (defaults the bench supplies), then ``given``."""
        out = {key: spec.default for key, spec in self.options.items()}
        out.update(bench or {})
        out.update(given or {})
        return out

    # ------------------------------------------------------------------ help
    @property
    def install_hint(self) -> str:
        """How to install the driver's packages (empty when nothing is needed)."""
        return f"pip install -e '.[{self.extra}]' in the labtrain checkout" if self.extra else ""

    def describe_channels(self, port: Any) -> dict[str, Any]:
        """:attr:`channels` of ``port``, or :func:`default_channels`."""
        return (self.channels or default_channels)(port)


def default_channels(port: Any) -> dict[str, Any]:
    """What a port says it offers, from the attributes of the port contracts.

    A DAQ lists the channels it was opened with (``ao_channels`` ...) and its converter ranges;
    a pot array its channel and tap counts; a lock-in its amplitude and frequency ranges when
    it declares them.  A driver that can ask its device for more (every physical channel)
    gives its own :attr:`DriverSpec.channels`.
    """
    from labtrain.instruments.ports import DAQ, LockIn, PotArray, unwrap

    inner = unwrap(port)  # a safety wrapper: describe what it wraps
    if isinstance(inner, DAQ):
        return {"ao": list(inner.ao_channels), "ai": list(inner.ai_channels), "do": list(inner.do_lines),
                "ao_range_v": tuple(inner.ao_range_v), "ai_range_v": tuple(inner.ai_range_v),
                "product": type(inner).__name__}
    if isinstance(inner, PotArray):
        return {"n_channels": int(inner.n_channels), "n_taps": int(inner.n_taps)}
    if isinstance(inner, LockIn):
        return {"amplitude_range_v": (float(inner.min_amplitude_v), float(inner.max_amplitude_v)),
                "frequency_range_hz": tuple(float(v) for v in inner.frequency_range_hz)}
    return {}


def load_driver(name: str) -> DriverSpec:
    """The :class:`DriverSpec` registered as ``name`` (built-in or plugin); raises :class:`DriverError`."""
    from labtrain import registry

    group = "labtrain.drivers"
    installed = list(registry.names(group))
    if name not in installed:
        raise DriverError(f"no instrument driver named {name!r}{suggest(name, installed)}; "
                          f"installed: {', '.join(installed) or 'none'}")
    try:
        spec = registry.load(group, name)
    except registry.RegistryError as exc:
        raise DriverError(str(exc)) from None
    if not isinstance(spec, DriverSpec):
        raise DriverError(f"{group} entry {name!r} is a {type(spec).__name__}, not a "
                          f"labtrain.instruments.drivers.DriverSpec")
    return spec


def drivers_markdown() -> str:
    """The reference of every loadable driver and its options, as Markdown (for docs/experiment-file.md)."""
    from labtrain import registry
    from labtrain.schema import show

    lines = ["## [instruments.<name>]", "",
             "`driver` (a name below), `resource` (string), `options` (table). The role is the driver's port.", ""]
    for name in registry.names("labtrain.drivers"):
        try:
            spec = load_driver(name)
        except DriverError:
            continue
        lines += [f"### `{name}` ({spec.port})", "", spec.description + ".",
                  f"Resource: {spec.resource_doc}." if spec.resource_doc else "",
                  f"Install: `{spec.install_hint}`." if spec.install_hint else "", ""]
        if spec.options:
            lines += ["| option | type | default | allowed | meaning |", "|---|---|---|---|---|"]
            for key, f in spec.options.items():
                default = "(bench)" if f.default is None else f"`{show(f.default)}`"
                lines.append(f"| `{key}` | {f.kind} | {default} | {f.allowed()} | {f.doc} |")
            lines.append("")
    return "\n".join(line for i, line in enumerate(lines) if line or (i and lines[i - 1])) + "\n"
