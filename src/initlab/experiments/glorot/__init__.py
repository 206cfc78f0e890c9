"""Group D of PROTOCOLS.md: Glorot & Bengio (2010) reproduced (saturation, gradients, Table 1).

One module per experiment; each registers itself with
:func:`initlab.experiments.registry.register` when imported. :mod:`.common` holds what they
share (network, inits, data splits, seeds, Jacobians).
"""
