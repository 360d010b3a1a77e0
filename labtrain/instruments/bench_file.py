"""The bench an experiment file describes: ``[instruments]`` tables, the ports opened from them, and the
checks of those ports against the wiring that run before any voltage is applied.

File
----
::

    [instruments.daq]
    driver = "nidaq"                      # a registered driver (labtrain devices lists them)
    resource = "Dev1"                     # VISA resource / serial port / FTDI URL / NI device name
    options = { terminal_config = "DIFF", ao_range_v = [-10.0, 10.0] }

    [instruments.lockin]
    driver = "sr830"
    resource = "ASRL/dev/ttyUSB0::INSTR"
    options = { baud_rate = 9600 }        # RS-232: CR terminations and OUTX 0 are the driver's defaults

    [instruments.pots]
    driver = "potbridge"
    resource = "/dev/ttyACM0"
    options = { n_taps = 1024, r_total_ohm = 1e5 }

Each table is one instrument; its role on the bench is its driver's port kind
(``daq``, ``lockin``, ``pots``), one instrument per role.  The wiring names DAQ
channels either in full (``"Dev1/ao3"``) or through the instrument
(``"daq/ao3"`` -> ``"<resource of [instruments.daq]>/ao3"``).

Roles the file does not name keep the flat ``[backend]`` keys: ``daq_device``
(NI DAQ) and ``pot_interface`` / ``pot_address`` (pot bridge or AD5293 chain) --
a file without ``[instruments]`` means exactly what it meant before.

On ``[backend] kind = "twin"`` nothing is opened: the twin simulates the
instruments the file names (the options that shape it -- pot taps and
resistances, the DAQ's AO range -- are honoured), so the file you dry-run is
the file you run.

Checks
------
:func:`check_bench` compares the opened ports with what the bench needs
(:class:`BenchNeeds`): every channel the wiring names exists on the device
(the NI driver lists every physical channel of the device, not only the ones
opened), the counts fit, the AO and AI ranges cover ``max_abs_v`` /
``ai_max_abs_v``, the pot array has every wired channel, the lock-in's sine out
reaches the amplitude asked for.  :func:`require_bench` raises the first
problem as a one-line :class:`BenchError` whose ``section`` names the table to
blame (``"wiring"``, ``"backend"``, ``"instruments.daq"``).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from labtrain.instruments.ports import DAQ, PortError, unwrap
from labtrain.instruments.drivers import BENCH_KEYS, PORT_KINDS, DriverError, DriverSpec, default_channels, load_driver
from labtrain.schema import ConfigError, show, suggest

__all__ = ["parse_instruments", "INSTRUMENT_KEYS", "BenchError", "instruments_from_backend", "bench_instruments",
           "resolve_channel", "daq_prefix", "has_role", "Bench", "BenchPort", "open_bench", "ChannelGroup",
           "BenchNeeds", "check_bench", "require_bench"]

#: keys of one ``[instruments.<name>]`` table
INSTRUMENT_KEYS = ("driver", "resource", "options")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_RELATIVE = re.compile(r"^(ai|ao|port|line|ctr|pfi)\d+(/|$)", re.IGNORECASE)  # an NI channel without its device


class BenchError(ValueError):
    """The bench cannot serve the experiment (one-line message).

    ``section`` is the experiment-file table to blame, without brackets: ``"wiring"``,
    ``"backend"``, ``"chip"`` or ``"instruments.<name>"``.
    """

    def __init__(self, message: str, section: str = "instruments") -> None:
        super().__init__(message)
        self.section = section


# ============================================================================ the file
def parse_instruments(table: Any, source: str) -> dict[str, dict[str, Any]]:
    """Validate ``[instruments.<name>]`` tables (raises :class:`~labtrain.schema.ConfigError`, one line).

    Returns ``{name: {"driver", "resource", "options", "port"}}``: the given options converted
    (defaults are filled when the port is opened) and ``port`` the driver's port kind.
    """
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [instruments] must be a table of instrument tables, "
                          f"e.g. [instruments.daq]; got {show(table)}")
    out: dict[str, dict[str, Any]] = {}
    roles: dict[str, str] = {}
    for name, entry in table.items():
        where = f"{source}: [instruments.{name}]"
        if not _NAME.match(name):
            raise ConfigError(f"{where}: instrument names start with a letter and hold letters, digits, '_' or "
                              f"'-' (they prefix channel names: '{name}/ao0')")
        if not isinstance(entry, dict):
            raise ConfigError(f"{source}: [instruments] {name} = {show(entry)}: expected a table "
                              f"[instruments.{name}] with driver, resource and options")
        for key in entry:
            if key not in INSTRUMENT_KEYS:
                raise ConfigError(f"{where} unknown key {key!r}{suggest(key, list(INSTRUMENT_KEYS))}; "
                                  f"allowed keys: {', '.join(INSTRUMENT_KEYS)}")
        if "driver" not in entry:
            raise ConfigError(f"{where} has no driver; e.g. driver = \"nidaq\" (labtrain devices lists the "
                              f"installed drivers)")
        driver = entry["driver"]
        if not isinstance(driver, str):
            raise ConfigError(f"{where} driver = {show(driver)}: expected a string")
        try:
            spec = load_driver(driver)
        except DriverError as exc:
            raise ConfigError(f"{where} driver = {driver!r}: {exc}") from None
        resource = entry.get("resource", "")
        if not isinstance(resource, str):
            doc = spec.resource_doc or "the address of the instrument"
            raise ConfigError(f"{where} resource = {show(resource)}: expected a string ({doc})")
        options = spec.check_options(entry.get("options", {}), where)
        if spec.port in roles:
            raise ConfigError(f"{where} driver = {driver!r}: a bench has one {spec.port} and "
                              f"[instruments.{roles[spec.port]}] is already it")
        roles[spec.port] = name
        out[name] = {"driver": driver, "resource": resource, "options": options, "port": spec.port}
    return out


def instruments_from_backend(backend: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """What the flat ``[backend]`` keys mean: an NI DAQ (``daq_device``) and a pot array
    (``pot_interface`` serial -> ``potbridge``, ftdi -> ``ad5293_ftdi``, at ``pot_address``)."""
    pots = "ad5293_ftdi" if backend.get("pot_interface") == "ftdi" else "potbridge"
    return {
        "daq": {"driver": "nidaq", "resource": str(backend.get("daq_device", "Dev1")), "options": {},
                "port": "daq", "section": "backend"},
        "pots": {"driver": pots, "resource": str(backend.get("pot_address", "")), "options": {},
                 "port": "pots", "section": "backend"},
    }


def bench_instruments(instruments: Mapping[str, Mapping[str, Any]] | None, backend: Mapping[str, Any],
                      roles: Sequence[str], optional: Sequence[str] = (), bench: str = "this chip") -> dict[str, dict]:
    """The instruments of a bench by name: the file's for the roles it names, the flat ``[backend]`` keys'
    (:func:`instruments_from_backend`) for the other ``roles``; ``optional`` roles only from the file.

    Raises :class:`BenchError` for an instrument whose role the bench has no use for.
    """
    instruments = dict(instruments or {})
    legacy = {e["port"]: (name, e) for name, e in instruments_from_backend(backend).items()}
    by_role = {e["port"]: (name, e) for name, e in instruments.items()}
    for role, (name, entry) in by_role.items():
        if role not in roles and role not in optional:
            raise BenchError(f"driver = {entry['driver']!r} is a {role}, and {bench} uses no {role} "
                             f"(it uses: {', '.join(list(roles) + list(optional))}); remove the table",
                             f"instruments.{name}")
    out: dict[str, dict] = {}
    for role in list(roles) + list(optional):
        if role in by_role:
            name, entry = by_role[role]
            out[name] = {**entry, "section": f"instruments.{name}"}
        elif role in roles and role in legacy:
            name, entry = legacy[role]
            out[name if name not in instruments else f"{name}-backend"] = dict(entry)
        elif role in roles:
            raise BenchError(f"{bench} needs a {role}: add an [instruments.<name>] table with a {role} driver")
    return out


def has_role(instruments: Mapping[str, Mapping[str, Any]] | None, role: str) -> bool:
    """True when the file's ``[instruments]`` name an instrument in ``role`` (e.g. a lock-in)."""
    return any(e.get("port") == role for e in (instruments or {}).values())


def daq_prefix(instruments: Mapping[str, Mapping[str, Any]], default: str = "Dev1") -> str:
    """The device prefix of the DAQ's channel names: the DAQ instrument's resource (or ``default``)."""
    for entry in instruments.values():
        if entry.get("port") == "daq":
            return entry.get("resource") or default
    return default


def resolve_channel(channel: str, instruments: Mapping[str, Mapping[str, Any]]) -> str:
    """``"daq/ao3"`` -> ``"Dev1/ao3"`` when ``[instruments.daq]`` is a DAQ with resource ``"Dev1"``;
    any other name is returned as it is."""
    head, sep, rest = str(channel).strip().partition("/")
    entry = instruments.get(head) if sep else None
    if entry is not None and entry.get("port") == "daq" and entry.get("resource"):
        return f"{entry['resource']}/{rest}"
    return str(channel).strip()


# ============================================================================ opening
@dataclass
class BenchPort:
    """One opened instrument: its name in the file, role, raw port and driver spec (None: given ready)."""

    name: str
    role: str
    port: Any
    spec: DriverSpec | None
    resource: str = ""
    section: str = "instruments"
    _channels: dict | None = field(default=None, repr=False)

    def channels(self) -> dict[str, Any]:
        """What the device offers (:attr:`DriverSpec.channels`, cached)."""
        if self._channels is None:
            self._channels = (self.spec.describe_channels(self.port) if self.spec is not None
                              else default_channels(self.port))
        return self._channels

    def label(self) -> str:
        """``NI USB-6363 'Dev1'``: product and resource, for messages."""
        try:
            product = self.channels().get("product") or type(self.port).__name__
        except Exception:  # noqa: BLE001 -- a label must not fail
            product = type(self.port).__name__
        return f"{product} {self.resource!r}" if self.resource else f"{product} ({self.name})"


class Bench:
    """The opened instruments of one bench, by role (``bench["daq"]`` is the raw DAQ port)."""

    def __init__(self, ports: Iterable[BenchPort]) -> None:
        self.ports: dict[str, BenchPort] = {p.role: p for p in ports}

    def __getitem__(self, role: str) -> Any:
        return self.ports[role].port

    def __contains__(self, role: str) -> bool:
        return role in self.ports

    def get(self, role: str, default: Any = None) -> Any:
        return self.ports[role].port if role in self.ports else default

    def identities(self) -> dict[str, str]:
        """``{instrument name: identify()}`` (queries only)."""
        return {p.name: str(p.port.identify()) for p in self.ports.values()}

    def close(self) -> None:
        """Close every port (best effort: one that fails to close does not keep the others open)."""
        for p in reversed(list(self.ports.values())):
            with contextlib.suppress(Exception):
                p.port.close()


def open_bench(instruments: Mapping[str, Mapping[str, Any]], bench_options: Mapping[str, Mapping[str, Any]] | None = None,
               given: Mapping[str, Any] | None = None) -> Bench:
    """Open every instrument through its registered driver (nothing is applied).

    Parameters
    ----------
    instruments : mapping
        ``{name: {"driver", "resource", "options", "port"}}`` as :func:`parse_instruments` or
        :func:`bench_instruments` return them.
    bench_options : mapping, optional
        Per role, what the bench passes to ``open`` (the :data:`~labtrain.instruments.drivers.BENCH_KEYS`,
        plus defaults for declared options such as the ``[backend]`` pot resistances); the file's
        options win over the latter.
    given : mapping, optional
        Ready ports by role (a QCoDeS/PyMeasure adapter from :mod:`labtrain.instruments.adapters`, a
        driver object opened in a notebook): used instead of opening that role's instrument.

    Raises
    ------
    BenchError
        An unknown driver, or a driver that refuses its resource/options (``ValueError``/``TypeError``).
    ImportError, PortError, OSError
        As the driver raises them (missing package, instrument not answering); every port opened
        before is closed first.
    """
    bench_options = bench_options or {}
    given = dict(given or {})
    opened: list[BenchPort] = []
    try:
        for role in PORT_KINDS:
            entries = [(n, e) for n, e in instruments.items() if e.get("port") == role]
            name, entry = entries[0] if entries else (role, None)
            section = (entry or {}).get("section", f"instruments.{name}")
            if role in given:
                opened.append(BenchPort(name, role, given.pop(role), None, (entry or {}).get("resource", ""),
                                        section))
                continue
            if entry is None:
                continue
            try:
                spec = load_driver(entry["driver"])
            except DriverError as exc:
                raise BenchError(f"driver = {entry['driver']!r}: {exc}", section) from None
            extra = dict(bench_options.get(role, {}))
            bench_keys = {k: v for k, v in extra.items() if k in spec.options or k in BENCH_KEYS.get(role, ())}
            options = spec.resolve_options(entry.get("options", {}), bench_keys)
            try:
                port = spec.open(entry.get("resource", ""), options)
            except (ValueError, TypeError) as exc:
                if isinstance(exc, BenchError):
                    raise
                text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise BenchError(f"driver = {entry['driver']!r}, resource = {entry.get('resource', '')!r}: "
                                 f"{text}", section) from exc
            opened.append(BenchPort(name, role, port, spec, entry.get("resource", ""), section))
        if given:
            raise BenchError(f"ready ports given for unknown roles {sorted(given)}; roles: {', '.join(PORT_KINDS)}")
    except BaseException:
        Bench(opened).close()
        raise
    return Bench(opened)


# ============================================================================ checks
@dataclass(frozen=True)
class ChannelGroup:
    """Channels of one kind that one file key names: e.g. ``ChannelGroup("ao", "output_ao", (...))``."""

    kind: str                     #: "ao", "ai" or "do"
    key: str                      #: the file key (or description) that names them
    channels: tuple[str, ...]
    section: str = "wiring"


@dataclass(frozen=True)
class BenchNeeds:
    """What an experiment needs from its bench (see :func:`check_bench`).

    ``max_abs_v`` is the largest ``|V|`` any AO sample may take, named by ``max_abs_v_source``
    (``(section, text)``, e.g. ``("backend", "max_abs_v = 2")``); likewise ``ai_max_abs_v``.
    ``pot_channels`` are the wired pot channels; ``lockin_amplitude_v`` the largest sine-out
    amplitude (V RMS) the rule will ask for.
    """

    groups: tuple[ChannelGroup, ...] = ()
    max_abs_v: float | None = None
    max_abs_v_source: tuple[str, str] = ("backend", "max_abs_v")
    ai_max_abs_v: float | None = None
    ai_max_abs_v_source: tuple[str, str] = ("backend", "ai_max_abs_v")
    pot_channels: tuple[int, ...] = ()
    pot_source: tuple[str, str] = ("wiring", "pot_channels")
    lockin_amplitude_v: float | None = None
    lockin_source: tuple[str, str] = ("backend", "lock-in amplitude")


_KIND_WORDS = {"ao": "AO", "ai": "AI", "do": "DO"}


def _full(name: str, prefix: str) -> str:
    name = str(name).strip().lstrip("/")
    return f"{prefix}/{name}" if prefix and _RELATIVE.match(name) else name


def _few(names: Sequence[str]) -> str:
    if not names:
        return "none"
    return ", ".join(names) if len(names) <= 4 else f"{names[0]}..{names[-1]}"


def _fmt(v: float) -> str:
    return f"{v:g}"


def check_bench(bench: Bench, needs: BenchNeeds) -> list[BenchError]:
    """Every way ``bench`` cannot serve ``needs`` (empty: it can).  Queries only: nothing is applied.

    DAQ: each channel of ``needs.groups`` exists on the device (first missing channel per group,
    with the device's count and the count needed), AO range covers ``max_abs_v`` (the device's and
    the port's configured range), AI range covers ``ai_max_abs_v``.  Pots: every wired channel
    exists.  Lock-in: its sine out reaches ``lockin_amplitude_v``.  A device that cannot be asked
    (a :class:`~labtrain.instruments.ports.PortError` while listing channels) is a problem too.
    """
    problems: list[BenchError] = []
    if "daq" in bench.ports:
        problems += _check_daq(bench.ports["daq"], needs)
    if "pots" in bench.ports and needs.pot_channels:
        problems += _check_pots(bench.ports["pots"], needs)
    if "lockin" in bench.ports and needs.lockin_amplitude_v is not None:
        problems += _check_lockin(bench.ports["lockin"], needs)
    return problems


def require_bench(bench: Bench, needs: BenchNeeds) -> None:
    """Raise the first problem of :func:`check_bench` (a one-line :class:`BenchError`)."""
    problems = check_bench(bench, needs)
    if problems:
        raise problems[0]


def _listing(bp: BenchPort) -> tuple[dict[str, Any] | None, BenchError | None]:
    try:
        return bp.channels(), None
    except (PortError, OSError, ValueError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None, BenchError(f"{bp.name}: cannot list the device's channels: {text}", bp.section)


def _check_daq(bp: BenchPort, needs: BenchNeeds) -> list[BenchError]:
    info, err = _listing(bp)
    if err is not None:
        return [err]
    bare = unwrap(bp.port)
    prefix = (bare.device if isinstance(bare, DAQ) else "") or bp.resource
    problems: list[BenchError] = []
    label = bp.label()
    for kind in ("ao", "ai", "do"):
        offered = [str(c) for c in info.get(kind, [])]
        have = {_full(c, prefix).lower() for c in offered}
        groups = [g for g in needs.groups if g.kind == kind]
        wanted = list(dict.fromkeys(_full(c, prefix) for g in groups for c in g.channels))
        for g in groups:
            missing = [c for c in g.channels if _full(c, prefix).lower() not in have]
            if missing:
                word = _KIND_WORDS[kind]
                problems.append(BenchError(
                    f"{g.key} names {missing[0]!r}, which {label} does not have: it has {len(offered)} {word} "
                    f"channel{'s' if len(offered) != 1 else ''} ({_few(offered)}); this bench needs "
                    f"{len(wanted)}", g.section))
    port = unwrap(bp.port)
    for which, limit, source in (("ao", needs.max_abs_v, needs.max_abs_v_source),
                                 ("ai", needs.ai_max_abs_v, needs.ai_max_abs_v_source)):
        if limit is None:
            continue
        word = _KIND_WORDS[which]
        device_rng = info.get(f"{which}_range_v")
        if device_rng is not None and not (device_rng[0] <= -limit and limit <= device_rng[1]):
            problems.append(BenchError(
                f"{source[1]}: +-{_fmt(limit)} V is beyond the {word} range of {label} "
                f"([{_fmt(device_rng[0])}, {_fmt(device_rng[1])}] V)", source[0]))
            continue
        port_rng = (port.ao_range_v if which == "ao" else port.ai_range_v) if isinstance(port, DAQ) else None
        if which == "ao" and port_rng is not None and not (port_rng[0] <= -limit and limit <= port_rng[1]):
            problems.append(BenchError(
                f"{source[1]}: +-{_fmt(limit)} V is beyond the AO range {bp.name} is opened with "
                f"([{_fmt(port_rng[0])}, {_fmt(port_rng[1])}] V, options.ao_range_v)", bp.section))
    return problems


def _check_pots(bp: BenchPort, needs: BenchNeeds) -> list[BenchError]:
    info, err = _listing(bp)
    if err is not None:
        return [err]
    n = int(info.get("n_channels", 0))
    beyond = [c for c in needs.pot_channels if not 0 <= int(c) < n]
    if beyond:
        return [BenchError(f"{needs.pot_source[1]} names pot channel {beyond[0]}, which {bp.label()} does not "
                           f"have: it has {n} channel{'s' if n != 1 else ''} (0..{n - 1})", needs.pot_source[0])]
    return []


def _check_lockin(bp: BenchPort, needs: BenchNeeds) -> list[BenchError]:
    info, err = _listing(bp)
    if err is not None:
        return [err]
    rng = info.get("amplitude_range_v")
    amp = float(needs.lockin_amplitude_v)
    if rng is not None and amp > rng[1]:
        return [BenchError(f"{needs.lockin_source[1]}: {_fmt(amp)} V RMS is beyond the sine out of {bp.label()} "
                           f"({_fmt(rng[0])}..{_fmt(rng[1])} V RMS)", needs.lockin_source[0])]
    return []
