"""What is connected: VISA resources, NI-DAQmx devices, serial ports, FTDI interfaces; and port identity checks.

For the CLI::

    labtrain devices                      ->  print(format_devices(list_devices()))
                                              print(format_drivers(list_drivers()))
    labtrain check FILE --backend hardware ->  print(format_check(check_ports(ports))); exit 1 unless all_ok(...)

Nothing here writes to an instrument: listing only enumerates, and
:func:`check_ports` calls nothing but each port's ``identify()`` (a query).
Every optional package is imported inside the function that needs it, and a
missing package or driver is reported, never raised.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

from labtrain.drivers._common import HARDWARE_EXTRA

__all__ = ["list_devices", "format_devices", "list_drivers", "format_drivers", "check_ports", "format_check",
           "all_ok"]

SECTIONS = ("visa", "ni", "serial", "ftdi")
_VI_ERROR_RSRC_NFOUND = -1073807343
_TITLES = {"visa": "VISA resources", "ni": "NI-DAQmx devices", "serial": "Serial ports", "ftdi": "FTDI interfaces"}


def _section(status: str, message: str = "", devices: list | None = None) -> dict:
    return {"status": status, "message": message, "devices": devices or []}


def _missing(package: str) -> dict:
    return _section("missing", f"{package} not installed ({HARDWARE_EXTRA})")


def _error(what: str, exc: BaseException) -> dict:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return _section("error", f"{what}: {type(exc).__name__}{': ' + text if text else ''}")


def _visa(visa_library: str) -> dict:
    try:
        import pyvisa
    except ImportError:
        return _missing("pyvisa")
    try:
        rm = pyvisa.ResourceManager(visa_library)
    except Exception as exc:  # no VISA implementation (NI-VISA / pyvisa-py) found, bad library path, ...
        return _error("no usable VISA library (install NI-VISA or pyvisa-py)", exc)
    resources: list[str] = []
    try:
        for query in ("?*::INSTR", "?*::SOCKET"):
            try:
                resources += rm.list_resources(query)
            except pyvisa.errors.VisaIOError as exc:
                if exc.error_code != _VI_ERROR_RSRC_NFOUND:  # "none found" is not an error
                    raise
    except Exception as exc:
        return _error("listing VISA resources failed", exc)
    finally:
        try:
            rm.close()
        except Exception:
            pass
    resources = sorted(set(resources))
    devices = [{"resource": str(r)} for r in resources]
    return _section("ok", f"backend {getattr(rm, 'visalib', '')}".strip(), devices)


def _ni() -> dict:
    try:
        import nidaqmx.system
    except ImportError:
        return _missing("nidaqmx")
    try:
        system = nidaqmx.system.System.local()
        version = system.driver_version
        names = list(system.devices.device_names)
    except Exception as exc:  # nidaqmx is installed but the NI-DAQmx C driver is not (DaqNotFoundError), ...
        return _error("NI-DAQmx driver not found or not working (nidaqmx is installed)", exc)
    devices = []
    for name in names:
        entry: dict[str, Any] = {"name": name}
        try:
            dev = nidaqmx.system.Device(name)
            entry["product_type"] = str(dev.product_type)
            entry["serial"] = f"{int(dev.serial_num):X}"
            entry["simulated"] = bool(dev.dev_is_simulated)
        except Exception as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
        devices.append(entry)
    ver = ".".join(str(v) for v in version) if isinstance(version, tuple) else str(version)
    return _section("ok", f"NI-DAQmx {ver}", devices)


def _serial() -> dict:
    try:
        from serial.tools import list_ports
    except ImportError:
        return _missing("pyserial")
    try:
        ports = sorted(list_ports.comports(), key=lambda p: p.device)
    except Exception as exc:
        return _error("listing serial ports failed", exc)
    devices = [{"device": p.device, "description": p.description or "", "hwid": p.hwid or ""} for p in ports]
    return _section("ok", "", devices)


def _ftdi() -> dict:
    try:
        from pyftdi.ftdi import Ftdi
    except ImportError:
        return _missing("pyftdi")
    try:
        found = Ftdi.list_devices()
    except Exception as exc:  # no libusb backend, no permission, ...
        return _error("listing FTDI devices failed (libusb backend and permissions?)", exc)
    devices = []
    for desc, n_interfaces in found:
        sn = desc.sn or ""
        base = f"ftdi://0x{desc.vid:04x}:0x{desc.pid:04x}{':' + sn if sn else ''}"
        devices.append({"urls": [f"{base}/{i}" for i in range(1, int(n_interfaces) + 1)],
                        "description": desc.description or "", "serial": sn})
    return _section("ok", "", devices)


def list_devices(visa_library: str = "", sections: tuple[str, ...] = SECTIONS) -> dict[str, dict]:
    """Enumerate the bench, one section per kind; never raises.

    Returns ``{section: {"status": "ok"|"missing"|"error", "message": str, "devices": [dict, ...]}}``
    with sections ``visa`` (``{"resource"}``), ``ni`` (``{"name", "product_type", "serial", "simulated"}``),
    ``serial`` (``{"device", "description", "hwid"}``) and ``ftdi`` (``{"urls", "description", "serial"}``).
    ``visa_library`` picks the PyVISA backend (``"@py"``, ``"file.yaml@sim"``; empty: default).
    """
    probes = {"visa": lambda: _visa(visa_library), "ni": _ni, "serial": _serial, "ftdi": _ftdi}
    out = {}
    for name in sections:
        try:
            with warnings.catch_warnings():  # e.g. pyvisa-py's hints about optional discovery packages
                warnings.simplefilter("ignore")
                out[name] = probes[name]()
        except Exception as exc:  # a probe must never take the command down
            out[name] = _error(f"probing {name} failed", exc)
    return out


def _describe(section: str, dev: dict) -> str:
    if section == "visa":
        return dev["resource"]
    if section == "ni":
        if "error" in dev:
            return f"{dev['name']}: {dev['error']}"
        sim = ", simulated" if dev.get("simulated") else ""
        return f"{dev['name']}: {dev.get('product_type', '?')} (serial {dev.get('serial', '?')}{sim})"
    if section == "serial":
        extra = " - ".join(s for s in (dev.get("description"), dev.get("hwid")) if s and s != "n/a")
        return f"{dev['device']}{'  ' + extra if extra else ''}"
    if section == "ftdi":
        return f"{', '.join(dev['urls'])}  {dev.get('description', '')}".rstrip()
    return str(dev)


def format_devices(info: Mapping[str, dict]) -> str:
    """The report of :func:`list_devices` as text, one block per section."""
    lines = []
    for section, data in info.items():
        title = _TITLES.get(section, section)
        status, message, devices = data.get("status"), data.get("message", ""), data.get("devices", [])
        if status != "ok":
            lines.append(f"{title}: {message}")
            continue
        head = f"{title} ({message})" if message else title
        if not devices:
            lines.append(f"{head}: none found")
            continue
        lines.append(f"{head}:")
        lines += [f"  {_describe(section, d)}" for d in devices]
    return "\n".join(lines)


def check_ports(ports: Mapping[str, Any]) -> list[dict]:
    """Ask every port for its identity (``identify()`` only: no voltage, no tap is changed).

    ``ports`` maps a name (``"daq"``, ``"lockin"``, ``"pots"``) to a port.  Returns one
    ``{"name", "kind", "ok", "identity" | "error"}`` per port; never raises for an instrument fault.
    """
    results = []
    for name, port in ports.items():
        entry: dict[str, Any] = {"name": name, "kind": type(port).__name__}
        try:
            entry["identity"] = str(port.identify())
            entry["ok"] = True
        except Exception as exc:
            entry["ok"] = False
            entry["error"] = f"{type(exc).__name__}: {exc}"
        results.append(entry)
    return results


def all_ok(results: list[dict]) -> bool:
    return all(r["ok"] for r in results)


def format_check(results: list[dict]) -> str:
    """One line per port: ``ok   name (Kind): identity`` or ``FAIL name (Kind): error``."""
    lines = []
    for r in results:
        tag, text = ("ok  ", r["identity"]) if r["ok"] else ("FAIL", r["error"])
        lines.append(f"{tag} {r['name']} ({r['kind']}): {text}")
    return "\n".join(lines)


def list_drivers() -> list[dict]:
    """Every instrument driver an ``[instruments]`` table may name (built-in and plugins); never raises.

    One ``{"name", "port", "source", "description", "install", "options", "error"}`` per registry entry
    of the ``labtrain.drivers`` group; a plugin that fails to load has ``error`` set (and no port).
    Loading a driver spec imports no instrument package.
    """
    from labtrain import registry
    from labtrain.instruments.drivers import DriverError, load_driver

    rows = []
    for name, entry in registry.entries("labtrain.drivers").items():
        row: dict[str, Any] = {"name": name, "port": "", "source": entry.source, "description": "", "install": "",
                               "options": [], "error": ""}
        try:
            spec = load_driver(name)
        except DriverError as exc:
            row["error"] = str(exc)
        else:
            row.update(port=spec.port, description=spec.description, install=spec.install_hint,
                       options=list(spec.options))
        rows.append(row)
    return rows


def format_drivers(rows: list[dict]) -> str:
    """The report of :func:`list_drivers`: one line per driver (``name  port  description [plugin]``)."""
    lines = ["Instrument drivers ([instruments.<name>] driver = ...):"]
    for r in rows:
        origin = "" if r["source"] == "labtrain" else f" [{r['source']}]"
        if r["error"]:
            lines.append(f"  {r['name']:<13} BROKEN{origin}: {r['error']}")
        else:
            lines.append(f"  {r['name']:<13} {r['port']:<7} {r['description']}{origin}")
    return "\n".join(lines)
