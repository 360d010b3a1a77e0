"""Real instrument drivers behind the port interfaces of :mod:`labtrain.instruments.ports`.

==========================================  ==================  ==================================================
driver                                      port                needs (``pip install -e '.[hardware]'`` in the checkout)
==========================================  ==================  ==================================================
:class:`.nidaq.NIDAQ`                       DAQ                 nidaqmx + the NI-DAQmx driver
:class:`.lockin.SR830LockIn`                LockIn              pymeasure, pyvisa + a VISA backend
:class:`.lockin.SR860LockIn`                LockIn              pymeasure, pyvisa + a VISA backend
:class:`.potbridge.SerialPotBridge`         PotArray            pyserial (bridge firmware: docs/hardware.md)
:class:`.potbridge.FTDIAD5293Chain`         PotArray            pyftdi (+ libusb)
:func:`.discovery.list_devices`             --                  whatever of the above is installed
==========================================  ==================  ==================================================

Each driver module also holds its :class:`~labtrain.instruments.drivers.DriverSpec` -- what an
experiment file's ``[instruments.<name>] driver = ...`` names (``nidaq``: ``nidaq.DRIVER``;
``sr830`` / ``sr860``: ``lockin.SR830_DRIVER`` / ``SR860_DRIVER``; ``potbridge`` / ``ad5293_ftdi``:
``potbridge.SERIAL_DRIVER`` / ``FTDI_DRIVER``), registered in :data:`labtrain.registry.BUILTIN`;
plugins add theirs through the ``labtrain.drivers`` entry-point group.  Instrument objects a lab
already has (QCoDeS, PyMeasure) become ports through :mod:`labtrain.instruments.adapters`.

Import the driver modules directly (``from labtrain.drivers.nidaq import NIDAQ``).
Every driver imports its heavy dependency lazily, inside its constructor, so
``import labtrain`` -- and importing these modules -- never needs nidaqmx,
pymeasure, pyvisa, pyserial or pyftdi; a missing one is a one-line
``ImportError`` naming the extra.  Instrument faults surface as
:class:`~labtrain.instruments.ports.PortTimeout` / :class:`~labtrain.instruments.ports.PortIOError`.
The wiring, the pot-bridge line protocol and the AD5293 frames are described
in ``docs/hardware.md``.
"""
