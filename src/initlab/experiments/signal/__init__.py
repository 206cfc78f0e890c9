"""Group A of PROTOCOLS.md: signal propagation without training data (A1-A4), and the
optimizer paths on a 2-D function.

One module per experiment; each registers itself with
:func:`initlab.experiments.registry.register` when imported.
"""
