"""What the DAQ-and-pot benches share: the linear resistor bench (:mod:`labtrain.kinds.resistor`) and the
nonlinear (diode) bench (:mod:`labtrain.kinds.nonlinear`) drive inputs and outputs through DAQ AO channels
(outputs behind switches and a series resistor), read nodes on AI channels and train conductances on a
digital-pot array.

* :mod:`.chip` -- :class:`~.chip.DACBenchChip`, the chip base (acquisition settings, retries, DC and AC
  measurements, pot writes, safe state);
* :mod:`.wiring` -- :class:`~.wiring.DACWiring`, the channel assignment both wirings extend;
* :mod:`.twin` -- the simulated pot array and the output switch paths of both twins;
* :mod:`.hardware` -- assembling a bench from an experiment's ``[backend]`` and ``[instruments]``.

Not a chip kind: no ``KIND`` here, nothing in the registry.
"""
