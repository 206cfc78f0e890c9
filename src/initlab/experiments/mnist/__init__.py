"""Group B of PROTOCOLS.md: the training experiments on MNIST (B1-B6).

One module per experiment; each registers itself with
:func:`initlab.experiments.registry.register` when imported.
"""
