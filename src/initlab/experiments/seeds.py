"""One place that derives every random stream of an experiment from the run's seed.

Two fresh generators seeded alike give the same numbers: ``initialize(model, seed=s)``
followed by ``gaussian_inputs(..., seed=s)`` makes the input batch a rescaled copy of the
first layer's weights (correlation 1.0), which biased A1 and A4. So each stream an
experiment draws from (weights, inputs, probe targets, data, minibatches, dropout masks)
gets its own seed from :func:`stream_seed`:

- ``weights``: the run seed itself (``initialize(model, scheme, seed=run.seed)``, as a user
  would call it);
- every other stream: a 31-bit hash of ``(stream, run seed)`` (BLAKE2b), so it equals no
  weight seed and no other stream's seed except by a 2^-31 chance, and the same run seed
  always gives the same numbers.

>>> stream_seed(0, "weights"), stream_seed(0, "inputs") != 0
(0, True)
"""

from __future__ import annotations

import hashlib
from typing import Literal, get_args

from initlab.errors import check_choice

Stream = Literal["weights", "inputs", "targets", "data", "minibatches", "dropout"]
STREAMS: tuple[str, ...] = get_args(Stream)


def stream_seed(seed: int, stream: Stream) -> int:
    """The seed of ``stream`` for run seed ``seed`` (see the module doc)."""
    check_choice(stream, STREAMS, "random stream")
    if stream == "weights":
        return int(seed)
    digest = hashlib.blake2b(f"initlab/{stream}/{int(seed)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF
