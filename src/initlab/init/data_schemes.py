"""The data-dependent schemes, registered on import: LSUV and DBN pretraining.

Their registry entries name model-level functions, ``fn(model, data, *, seed, bias,
**options) -> InitSummary``, run by ``initialize(model, "lsuv" | "dbn", data=x)``; the
options are those a scheme string may set (``"lsuv:tol=0.05"``, ``"dbn:epochs=5,k=1"``).
"""

from __future__ import annotations

from initlab.init.dbn import dbn_
from initlab.init.lsuv import MAX_ITER, TOL, lsuv_
from initlab.init.rbm import LR_SCHEDULES, SAMPLINGS, VISIBLE_KINDS, RBMConfig
from initlab.init.registry import Option, Scheme, register

_RBM = RBMConfig()

DATA_SCHEMES: tuple[Scheme, ...] = (
    Scheme(
        "lsuv",
        "data-dependent: orthonormal, then W /= sqrt(Var(layer output)) layer by layer "
        "(Mishkin & Matas 2016)",
        lsuv_,
        options=(
            Option("tol", "float", TOL, "stop when |Var - 1| < tol", low=1e-12),
            Option("max_iter", "int", MAX_ITER, "most rescalings per layer", low=1),
        ),
        needs_data=True,
    ),
    Scheme(
        "dbn",
        "data-dependent: greedy stack of RBMs trained with CD-k / PCD (Hinton et al. 2006)",
        dbn_,
        options=(
            Option("epochs", "int", _RBM.epochs, "epochs per RBM", low=1),
            Option("k", "int", _RBM.k, "Gibbs steps per update (CD-k)", low=1),
            Option("lr", "float", _RBM.lr, "learning rate (first RBM)", low=1e-12),
            Option("hidden_lr", "float", 0.0, "learning rate of upper RBMs (0: lr)", low=0.0),
            Option("sampling", "choice", _RBM.sampling, "cd or persistent cd", choices=SAMPLINGS),
            Option("visible", "choice", "bernoulli", "first RBM's visibles", choices=VISIBLE_KINDS),
            Option("batch_size", "int", _RBM.batch_size, "examples per update", low=1),
            Option("weight_decay", "float", _RBM.weight_decay, "L2 on the weights", low=0.0),
            Option("momentum", "float", _RBM.momentum, "momentum after the first epochs", low=0.0),
            Option("sparsity_target", "float", 0.0, "target hidden activity (0: off)", low=0.0),
            Option("sparsity_cost", "float", 0.0, "weight of the sparsity penalty", low=0.0),
            Option("lr_schedule", "choice", "constant", "constant or linear", choices=LR_SCHEDULES),
            Option("pretrain_output", "bool", False, "also pretrain the output layer"),
            Option("output_std", "float", 0.01, "output layer's weight std", low=0.0),
            Option("progress", "bool", False, "show a progress bar"),
        ),
        applies_to=("linear",),
        needs_data=True,
    ),
)

for _scheme in DATA_SCHEMES:
    register(_scheme)
