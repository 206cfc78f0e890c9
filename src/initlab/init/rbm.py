"""Restricted Boltzmann machines trained with contrastive divergence (Hinton 2002, 2010).

An RBM has visible units ``v`` (``n_visible``), binary hidden units ``h`` (``n_hidden``),
weights ``W`` (``[n_hidden, n_visible]``, the layout of ``nn.Linear.weight``), hidden biases
``c`` and visible biases ``b``. Its energies (Hinton, "A Practical Guide to Training
Restricted Boltzmann Machines", UTML TR 2010-003, eqs. 1 and 17) are

    Bernoulli visible:  E(v, h) = -b.v - c.h - h.W v
    Gaussian visible:   E(v, h) = |v - b|^2 / 2 - c.h - h.W v     (unit variance, data
                                                                  standardized per pixel)

with ``p(h_j = 1 | v) = sigmoid(c_j + W_j v)``, ``p(v_i = 1 | h) = sigmoid(b_i + (W^T h)_i)``
(Bernoulli) or ``v | h ~ N(b + W^T h, I)`` (Gaussian), and the free energy

    F(v) = -b.v - sum_j softplus(c_j + W_j v)              (Bernoulli)
    F(v) = |v - b|^2 / 2 - sum_j softplus(c_j + W_j v)      (Gaussian)

so that ``p(v) = exp(-F(v)) / Z``. Training follows the guide:

1. ``W ~ N(0, 0.01^2)``, ``c = 0``, ``b_i = log(p_i / (1 - p_i))`` with ``p_i`` the fraction
   of training vectors with unit i on (Bernoulli; section 8) or the data mean (Gaussian).
2. Each minibatch: positive statistics from the data, ``p(h | v0)``; negative statistics
   after ``k`` Gibbs steps from the data (CD-k; hidden states sampled, visible
   probabilities used, the last hidden step as probabilities: section 3) or from persistent
   chains that are never reset (PCD, Tieleman 2008).
3. ``dW = <h v>_data - <h v>_model - weight_decay W`` (L2 on weights only, section 10),
   ``velocity = momentum velocity + lr dW`` with momentum 0.5 for the first epochs, then 0.9
   (section 9); the learning rate constant or falling linearly to 0.
4. Optional sparsity target ``p`` (section 11): the running mean activity
   ``q <- decay q + (1 - decay) mean(p(h | v0))`` adds ``-cost (q - p)`` to the hidden
   biases' and ``-cost (q - p) mean(v0)`` to the incoming weights' gradients.

Monitors, per epoch (section 5 and 6): reconstruction error ``|v0 - E[v | h0]|^2`` per
example; the mean free energy of a training subset and of held-out data (the gap grows
when the RBM overfits); and, when one layer has at most ``exact_max_units`` units, the
exact average log-likelihood ``-F(v) - log Z`` with ``log Z`` by enumeration.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor
from torch.nn import functional as F

from initlab.errors import InitlabError, check_choice

VisibleKind = Literal["bernoulli", "gaussian"]
VISIBLE_KINDS: tuple[str, ...] = get_args(VisibleKind)
Sampling = Literal["cd", "pcd"]
SAMPLINGS: tuple[str, ...] = get_args(Sampling)
LrSchedule = Literal["constant", "linear"]
LR_SCHEDULES: tuple[str, ...] = get_args(LrSchedule)

EXACT_MAX_UNITS = 20  # 2^20 configurations: about a second of enumeration on a CPU
_ENUM_CHUNK = 1 << 14  # configurations per enumeration chunk
# each random stream of train_rbm gets its own seed: seed + offset
SEED_OFFSETS: dict[str, int] = {"weights": 0, "batches": 7_919, "gibbs": 104_729}

EpochCallback = Callable[[dict[str, float]], None]


@dataclass(frozen=True)
class RBMConfig:
    """Training settings of one RBM; defaults from Hinton's practical guide (UTML TR 2010-003)."""

    epochs: int = 10  # passes over the training data
    batch_size: int = 100  # examples per update (guide section 4: 10 to 100)
    lr: float = 0.1  # learning rate of weights and biases (Gaussian visibles: ~0.001-0.01)
    k: int = 1  # Gibbs steps per update (CD-k)
    sampling: Sampling = "cd"  # cd: chains start at the data; pcd: persistent chains
    momentum_start: float = 0.5  # momentum of the first momentum_epochs epochs (section 9)
    momentum: float = 0.9  # momentum afterwards
    momentum_epochs: int = 5  # epochs at momentum_start
    weight_decay: float = 2e-4  # L2 coefficient on the weights (section 10: 1e-2 to 1e-5)
    sparsity_target: float = 0.0  # target mean hidden activity p; 0 switches sparsity off
    sparsity_cost: float = 0.0  # weight of the sparsity penalty (section 11)
    sparsity_decay: float = 0.95  # decay of the running activity estimate q
    lr_schedule: LrSchedule = "constant"  # constant, or linear to 0 over the epochs
    init_std: float = 0.01  # std of the initial weights (section 8)
    monitor_size: int = 1000  # training / held-out examples for the free-energy monitor

    def check(self) -> None:
        """Raise a one-line error for a value the fields' types cannot rule out."""
        for key in ("epochs", "batch_size", "k", "monitor_size"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InitlabError(f"RBM {key} must be a positive integer, got {value!r}")
        for key in ("lr", "init_std"):
            if not getattr(self, key) > 0 or not math.isfinite(getattr(self, key)):
                raise InitlabError(f"RBM {key} must be positive, got {getattr(self, key)}")
        for key in ("momentum_start", "momentum", "sparsity_decay"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise InitlabError(f"RBM {key} must be in [0, 1), got {getattr(self, key)}")
        for key in ("weight_decay", "sparsity_cost", "momentum_epochs"):
            if not getattr(self, key) >= 0:
                raise InitlabError(f"RBM {key} must be >= 0, got {getattr(self, key)}")
        if not 0.0 <= self.sparsity_target < 1.0:
            raise InitlabError(f"RBM sparsity_target must be in [0, 1), got {self.sparsity_target}")
        check_choice(self.sampling, SAMPLINGS, "RBM sampling")
        check_choice(self.lr_schedule, LR_SCHEDULES, "RBM lr_schedule")

    def lr_at(self, epoch: int) -> float:
        """The learning rate of epoch ``epoch`` (0-based)."""
        if self.lr_schedule == "linear":
            return self.lr * (1.0 - epoch / self.epochs)
        return self.lr

    def momentum_at(self, epoch: int) -> float:
        """The momentum of epoch ``epoch`` (0-based)."""
        return self.momentum_start if epoch < self.momentum_epochs else self.momentum


class RBM:
    """A Bernoulli-Bernoulli or Gaussian-Bernoulli RBM (see the module docstring).

    >>> rbm = RBM(6, 3, generator=torch.Generator().manual_seed(0))
    >>> rbm.weight.shape, rbm.free_energy(torch.zeros(2, 6)).shape
    (torch.Size([3, 6]), torch.Size([2]))
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        visible: VisibleKind = "bernoulli",
        *,
        init_std: float = 0.01,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        check_choice(visible, VISIBLE_KINDS, "RBM visible kind")
        if n_visible < 1 or n_hidden < 1:
            raise InitlabError(f"an RBM needs units on both sides, got {n_visible}x{n_hidden}")
        self.visible: VisibleKind = visible
        self.weight = torch.randn(n_hidden, n_visible, generator=generator, dtype=dtype) * init_std
        self.hidden_bias = torch.zeros(n_hidden, dtype=dtype)
        self.visible_bias = torch.zeros(n_visible, dtype=dtype)

    @property
    def n_visible(self) -> int:
        """Number of visible units."""
        return int(self.weight.shape[1])

    @property
    def n_hidden(self) -> int:
        """Number of hidden units."""
        return int(self.weight.shape[0])

    # -- conditionals and energies --------------------------------------------------------
    def hidden_probs(self, v: Tensor) -> Tensor:
        """``p(h = 1 | v) = sigmoid(c + v W^T)``, ``[B, n_hidden]``."""
        return torch.sigmoid(F.linear(v, self.weight, self.hidden_bias))

    def visible_mean(self, h: Tensor) -> Tensor:
        """``E[v | h]``: ``sigmoid(b + h W)`` (Bernoulli) or ``b + h W`` (Gaussian)."""
        total = torch.addmm(self.visible_bias, h, self.weight)
        return torch.sigmoid(total) if self.visible == "bernoulli" else total

    def sample_visible(self, h: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A sample of ``v | h``: Bernoulli states or ``N(mean, 1)`` values."""
        mean = self.visible_mean(h)
        if self.visible == "bernoulli":
            return torch.bernoulli(mean, generator=generator)
        return mean + torch.randn(mean.shape, generator=generator, dtype=mean.dtype)

    def free_energy(self, v: Tensor) -> Tensor:
        """``F(v)`` per example (module docstring), ``[B]``."""
        hidden_term = F.softplus(F.linear(v, self.weight, self.hidden_bias)).sum(1)
        if self.visible == "bernoulli":
            return -(v @ self.visible_bias) - hidden_term
        return 0.5 * (v - self.visible_bias).pow(2).sum(1) - hidden_term

    def reconstruct(self, v: Tensor) -> Tensor:
        """The mean-field reconstruction ``E[v | h = p(h | v)]``."""
        return self.visible_mean(self.hidden_probs(v))

    def gibbs(self, v: Tensor, steps: int, generator: torch.Generator | None = None) -> Tensor:
        """Run ``steps`` full Gibbs steps ``v -> h -> v`` from ``v``; returns the last ``E[v|h]``.

        States are sampled at every step; the mean of the last visible step is returned
        (the usual way to show samples: less pixel noise, same chain).
        """
        h = torch.bernoulli(self.hidden_probs(v), generator=generator)
        mean = self.visible_mean(h)
        for _ in range(steps - 1):
            v = self.sample_visible(h, generator)
            h = torch.bernoulli(self.hidden_probs(v), generator=generator)
            mean = self.visible_mean(h)
        return mean

    # -- exact likelihood -----------------------------------------------------------------
    def log_partition(self) -> float:
        """``log Z`` by enumerating the smaller layer's 2^n states (float64).

        Bernoulli visibles: sum over h of ``exp(c.h) prod_i (1 + exp(b_i + (W^T h)_i))``, or
        over v of ``exp(b.v) prod_j (1 + exp(c_j + W_j v))``, whichever side is smaller.
        Gaussian visibles (over h only): ``log Z = logsumexp_h [c.h + b.(W^T h) +
        |W^T h|^2 / 2] + n_visible / 2 log(2 pi)``.
        """
        w = self.weight.double()
        b, c = self.visible_bias.double(), self.hidden_bias.double()
        over_visible = self.visible == "bernoulli" and self.n_visible < self.n_hidden
        n = self.n_visible if over_visible else self.n_hidden
        if n > EXACT_MAX_UNITS:
            raise InitlabError(
                f"exact log Z enumerates 2^{n} states; at most {EXACT_MAX_UNITS} units on one side"
            )
        terms = []
        for states in _binary_states(n):
            if over_visible:
                terms.append(states @ b + F.softplus(states @ w.T + c).sum(1))
            elif self.visible == "bernoulli":
                terms.append(states @ c + F.softplus(states @ w + b).sum(1))
            else:
                top = states @ w
                terms.append(states @ c + top @ b + 0.5 * top.pow(2).sum(1))
        log_z = float(torch.logsumexp(torch.cat(terms), 0))
        if self.visible == "gaussian":
            log_z += 0.5 * self.n_visible * math.log(2 * math.pi)
        return log_z

    def log_likelihood(self, v: Tensor, log_z: float | None = None) -> float:
        """Exact mean ``log p(v) = -F(v) - log Z`` over the rows of ``v`` (small RBMs only)."""
        log_z = self.log_partition() if log_z is None else log_z
        saved = (self.weight, self.hidden_bias, self.visible_bias)
        try:  # free energy in float64, like log Z
            self.weight, self.hidden_bias, self.visible_bias = (t.double() for t in saved)
            return float(-self.free_energy(v.double()).mean()) - log_z
        finally:
            self.weight, self.hidden_bias, self.visible_bias = saved

    def exact_possible(self) -> bool:
        """True when :meth:`log_partition` can enumerate this RBM."""
        small = min(self.n_visible, self.n_hidden) if self.visible == "bernoulli" else self.n_hidden
        return small <= EXACT_MAX_UNITS


def _binary_states(n: int) -> list[Tensor]:
    """All 2^n binary vectors of length n (float64), in chunks of at most ``_ENUM_CHUNK``."""
    bits = 2 ** torch.arange(n, dtype=torch.int64)
    chunks = []
    for start in range(0, 2**n, _ENUM_CHUNK):
        codes = torch.arange(start, min(start + _ENUM_CHUNK, 2**n), dtype=torch.int64)
        chunks.append(((codes[:, None] & bits) > 0).double())
    return chunks


def check_data(data: Tensor, what: str = "data", width: int | None = None) -> Tensor:
    """``data`` (a tensor, or a :class:`~initlab.data.Dataset` whose inputs are used) as a
    float tensor ``[N, ...]`` with N >= 2, all finite; else a one-line error."""
    if not isinstance(data, Tensor) and isinstance(getattr(data, "x", None), Tensor):
        data = data.x  # an initlab Dataset: its inputs
    if not isinstance(data, Tensor):
        raise InitlabError(f"{what} must be a tensor of inputs [N, ...], got {type(data).__name__}")
    if data.ndim < 2 or data.shape[0] < 2:
        raise InitlabError(
            f"{what} must hold at least 2 examples as [N, ...] (variance is undefined for one), "
            f"got shape {list(data.shape)}"
        )
    if not data.is_floating_point():
        data = data.float()
    if not torch.isfinite(data).all():
        bad = int((~torch.isfinite(data)).sum())
        raise InitlabError(f"{what} holds {bad} NaN or infinite values")
    if width is not None and data[0].numel() != width:
        raise InitlabError(
            f"{what} has {data[0].numel()} values per example (shape {list(data.shape)}), "
            f"the model's first layer takes {width}"
        )
    return data


def init_visible_bias(rbm: RBM, data: Tensor) -> None:
    """Guide section 8: ``b_i = log(p_i / (1 - p_i))`` (Bernoulli) or the mean (Gaussian)."""
    mean = data.mean(0).to(rbm.visible_bias.dtype)
    if rbm.visible == "bernoulli":
        p = mean.clamp(1e-3, 1 - 1e-3)
        rbm.visible_bias = torch.log(p / (1 - p))
    else:
        rbm.visible_bias = mean


@dataclass
class RBMHistory:
    """The monitors of one training run: one row per epoch, row 0 at the start."""

    rows: list[dict[str, float]]

    def series(self, name: str) -> list[float]:
        """One monitor's values, epoch 0 (before training) first."""
        return [row[name] for row in self.rows if name in row]


def monitor(rbm: RBM, train: Tensor, held_out: Tensor | None) -> dict[str, float]:
    """One row of monitors on a training subset and held-out data (optional): the mean-field
    reconstruction error, the mean free energies and their gap, the exact LL if small."""
    row = {"recon_error": _recon_error(rbm, train)}
    f_train = float(rbm.free_energy(train).mean())
    row["free_energy_train"] = f_train
    if held_out is not None:
        f_held = float(rbm.free_energy(held_out).mean())
        row["free_energy_held_out"] = f_held
        row["free_energy_gap"] = f_held - f_train
    if rbm.exact_possible():
        log_z = rbm.log_partition()
        row["log_likelihood"] = rbm.log_likelihood(train, log_z)
        if held_out is not None:
            row["log_likelihood_held_out"] = rbm.log_likelihood(held_out, log_z)
    return row


def _recon_error(rbm: RBM, v: Tensor) -> float:
    """Mean squared reconstruction error per example, ``|v - E[v | p(h | v)]|^2``."""
    return float((v - rbm.reconstruct(v)).pow(2).sum(1).mean())


def train_rbm(
    rbm: RBM,
    data: Tensor,
    config: RBMConfig | None = None,
    *,
    held_out: Tensor | None = None,
    seed: int = 0,
    init_biases: bool = True,
    callback: EpochCallback | None = None,
) -> RBMHistory:
    """Train ``rbm`` in place on the rows of ``data`` (``[N, n_visible]``); return the monitors.

    ``held_out`` (optional) feeds the free-energy gap. ``seed`` seeds the minibatch order and
    the Gibbs sampling, each from its own stream (:data:`SEED_OFFSETS`). ``init_biases``
    sets the visible biases from the data first (guide section 8). ``callback`` gets every
    epoch's monitor row (with ``epoch``, ``lr`` and ``momentum``) as it is computed.
    """
    config = config or RBMConfig()
    config.check()
    data = check_data(data, "RBM data", rbm.n_visible)
    if held_out is not None:
        held_out = check_data(held_out, "RBM held-out data", rbm.n_visible)
        held_out = held_out.reshape(len(held_out), -1)[: config.monitor_size]
    data = data.reshape(len(data), -1).to(rbm.weight.dtype)
    if init_biases:
        init_visible_bias(rbm, data)
    batch_gen = torch.Generator().manual_seed(seed + SEED_OFFSETS["batches"])
    gibbs_gen = torch.Generator().manual_seed(seed + SEED_OFFSETS["gibbs"])
    monitor_train = data[: config.monitor_size]
    rows = [{"epoch": 0.0, **monitor(rbm, monitor_train, held_out)}]
    if callback is not None:
        callback(rows[-1])
    velocity = [torch.zeros_like(t) for t in (rbm.weight, rbm.hidden_bias, rbm.visible_bias)]
    activity = torch.full_like(rbm.hidden_bias, config.sparsity_target)
    chains = None
    if config.sampling == "pcd":  # fantasy particles start at a batch of data
        chains = data[torch.randperm(len(data), generator=batch_gen)[: config.batch_size]]
        if rbm.visible == "bernoulli":
            chains = torch.bernoulli(chains.clamp(0, 1), generator=gibbs_gen)
    for epoch in range(config.epochs):
        lr, momentum = config.lr_at(epoch), config.momentum_at(epoch)
        order = torch.randperm(len(data), generator=batch_gen)
        for start in range(0, len(data), config.batch_size):
            v0 = data[order[start : start + config.batch_size]]
            chains = _update(rbm, v0, chains, velocity, activity, config, lr, momentum, gibbs_gen)
        row = monitor(rbm, monitor_train, held_out)
        rows.append({"epoch": float(epoch + 1), "lr": lr, "momentum": momentum, **row})
        if callback is not None:
            callback(rows[-1])
    return RBMHistory(rows)


def _update(
    rbm: RBM,
    v0: Tensor,
    chains: Tensor | None,
    velocity: list[Tensor],
    activity: Tensor,
    config: RBMConfig,
    lr: float,
    momentum: float,
    gen: torch.Generator,
) -> Tensor | None:
    """One CD-k / PCD-k update on the batch ``v0``; returns the persistent chains (PCD)."""
    # 1. positive phase: hidden probabilities given the data, and a sampled hidden state
    ph0 = rbm.hidden_probs(v0)
    h = torch.bernoulli(ph0, generator=gen)
    # 2. negative phase: k Gibbs steps from the data (CD) or from the persistent chains
    if chains is None:
        vk = rbm.visible_mean(h)
        for _ in range(config.k - 1):
            h = torch.bernoulli(rbm.hidden_probs(vk), generator=gen)
            vk = rbm.visible_mean(h)
        phk = rbm.hidden_probs(vk)
    else:
        vk = chains
        for _ in range(config.k):
            h = torch.bernoulli(rbm.hidden_probs(vk), generator=gen)
            vk = rbm.sample_visible(h, gen)
        phk = rbm.hidden_probs(vk)
        chains = vk
    # 3. gradients: data minus model statistics, weight decay on the weights
    n, m = len(v0), len(vk)
    grad_w = ph0.T @ v0 / n - phk.T @ vk / m - config.weight_decay * rbm.weight
    grad_c = ph0.mean(0) - phk.mean(0)
    grad_b = v0.mean(0) - vk.mean(0)
    # 4. sparsity: push the running mean activity q toward the target p
    if config.sparsity_cost > 0 and config.sparsity_target > 0:
        activity.mul_(config.sparsity_decay).add_(ph0.mean(0), alpha=1 - config.sparsity_decay)
        excess = config.sparsity_cost * (activity - config.sparsity_target)
        grad_c = grad_c - excess
        grad_w = grad_w - excess[:, None] * v0.mean(0)[None, :]
    # 5. momentum step
    for param, vel, grad in zip(
        (rbm.weight, rbm.hidden_bias, rbm.visible_bias),
        velocity,
        (grad_w, grad_c, grad_b),
        strict=True,
    ):
        vel.mul_(momentum).add_(grad, alpha=lr)
        param.add_(vel)
    return chains


__all__ = [
    "EXACT_MAX_UNITS",
    "LR_SCHEDULES",
    "RBM",
    "SAMPLINGS",
    "SEED_OFFSETS",
    "VISIBLE_KINDS",
    "LrSchedule",
    "RBMConfig",
    "RBMHistory",
    "Sampling",
    "VisibleKind",
    "check_data",
    "init_visible_bias",
    "monitor",
    "train_rbm",
]
