"""Probes: per-layer statistics of activations, gradients, weights and updates, and a
one-batch ``diagnose`` (vanishing / exploding / saturated / dead / symmetric).

>>> import torch
>>> from initlab.models import mlp
>>> net = mlp([20, 16, 16, 4], "tanh")
>>> with Probe(net, layers=["act*"]) as probe:
...     _ = net(torch.randn(8, 20))
>>> [(r.layer, r.kind) for r in probe.records]
[('act1', 'activation'), ('act2', 'activation')]
"""

from initlab.probes.diagnose import (
    SEVERITY,
    VERDICTS,
    Diagnosis,
    LayerDiagnosis,
    Verdict,
    diagnose,
)
from initlab.probes.probe import (
    RECORD_KINDS,
    Probe,
    ProbeRecord,
    RecordKind,
    default_layers,
    select_layers,
)
from initlab.probes.schedules import Schedule, always, every, logspaced, logspaced_steps
from initlab.probes.stats import (
    PERCENTILES,
    SUMMARY_KEYS,
    dead_fraction,
    histogram,
    histogram_range,
    mean,
    nonfinite_count,
    percentiles,
    saturated_fraction,
    std,
    summarize,
)

__all__ = [
    "PERCENTILES",
    "RECORD_KINDS",
    "SEVERITY",
    "SUMMARY_KEYS",
    "VERDICTS",
    "Diagnosis",
    "LayerDiagnosis",
    "Probe",
    "ProbeRecord",
    "RecordKind",
    "Schedule",
    "Verdict",
    "always",
    "dead_fraction",
    "default_layers",
    "diagnose",
    "every",
    "histogram",
    "histogram_range",
    "logspaced",
    "logspaced_steps",
    "mean",
    "nonfinite_count",
    "percentiles",
    "saturated_fraction",
    "select_layers",
    "std",
    "summarize",
]
