"""labtrain-crossbar: an example labtrain plugin (a chip kind and an instrument driver).

labtrain finds both through the entry points in this package's ``pyproject.toml``;
nothing in labtrain names them.
"""
