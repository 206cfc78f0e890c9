"""Group E of PROTOCOLS.md: pretraining and data-dependent starts (E1 dbn, E2 lsuv)."""
