"""The rows of ``initlab init list``, kept here so that listing needs no torch import.

``initlab init list`` answers in a fraction of a second because it reads :data:`SCHEME_ROWS`
instead of importing :mod:`initlab.init` (which imports torch, about 2 s). The rows are made
from the live registry by :func:`live_rows`; ``python -m initlab.cli.scheme_listing``
rewrites :data:`SCHEME_ROWS` after a built-in scheme was added or changed, and a test fails
while the two differ.
"""

from __future__ import annotations

import pprint
from pathlib import Path

SchemeRow = tuple[str, tuple[str, ...], str, str, str]
"""(name, aliases, options with defaults, bias rule, one-line description)."""

# fmt: off
SCHEME_ROWS: tuple[SchemeRow, ...] = (('zeros',
  (),
  '-',
  'zeros',
  'all weights 0: every unit stays identical (the symmetry problem)'),
 ('constant',
  (),
  'value=0.0',
  'zeros',
  'all weights one value: units stay identical like zeros'),
 ('normal', (), 'std=1.0, mean=0.0', 'zeros', 'N(mean, std^2) whatever the layer size'),
 ('uniform',
  (),
  'a=1.0',
  'zeros',
  "U(-a, a) whatever the layer size (torch's uniform_(t, a, b) is U(a, b))"),
 ('truncated_normal',
  (),
  'std=1.0, mean=0.0, a=-2.0, b=2.0',
  'zeros',
  'N(mean, std^2) cut at [a, b] std'),
 ('standard',
  (),
  '-',
  'standard',
  "U[-1/sqrt(fan_in), 1/sqrt(fan_in)] (Glorot & Bengio 2010 eq. 1; PyTorch's default)"),
 ('xavier_normal',
  ('glorot_normal',),
  'gain=1.0',
  'zeros',
  'N(0, gain^2 2/(fan_in+fan_out)) (Glorot & Bengio 2010)'),
 ('xavier_uniform',
  ('glorot_uniform',),
  'gain=1.0',
  'zeros',
  'U[-+ gain sqrt(6/(fan_in+fan_out))] (Glorot & Bengio 2010 eq. 16)'),
 ('he_normal',
  ('kaiming_normal',),
  'negative_slope=0.0, mode=fan_in, nonlinearity=leaky_relu',
  'zeros',
  'N(0, 2/((1+slope^2) fan)) (He et al. 2015)'),
 ('he_uniform',
  ('kaiming_uniform',),
  'negative_slope=0.0, mode=fan_in, nonlinearity=leaky_relu',
  'zeros',
  'U[-+ sqrt(6/((1+slope^2) fan))] (He et al. 2015)'),
 ('lecun_normal', (), '-', 'zeros', 'N(0, 1/fan_in) (LeCun et al. 1998)'),
 ('lecun_uniform', (), '-', 'zeros', 'U[-+ sqrt(3/fan_in)] (LeCun et al. 1998)'),
 ('glorot_truncated_normal',
  (),
  'gain=1.0',
  'zeros',
  'truncated N, variance gain^2 2/(fan_in+fan_out) after the cut (JAX glorot_normal, Keras '
  'GlorotNormal)'),
 ('he_truncated_normal',
  (),
  'negative_slope=0.0, mode=fan_in, nonlinearity=leaky_relu',
  'zeros',
  'truncated N, variance 2/((1+slope^2) fan) after the cut (JAX he_normal, Keras HeNormal)'),
 ('lecun_truncated_normal',
  (),
  '-',
  'zeros',
  'truncated N, variance 1/fan_in after the cut (JAX lecun_normal, Keras LecunNormal)'),
 ('variance_scaling',
  (),
  'scale=1.0, mode=fan_in, distribution=normal',
  'zeros',
  'variance scale/fan (fan_in, fan_out, fan_avg or fan_geo_avg) from a normal, truncated '
  "normal or uniform (JAX's variance_scaling)"),
 ('orthogonal',
  (),
  'gain=1.0',
  'zeros',
  'random (semi-)orthogonal W, W W^T = gain^2 I (Saxe et al. 2014)'),
 ('identity',
  ('eye',),
  'gain=1.0',
  'zeros',
  'W = gain I for Linear layers (rectangular: main diagonal)'),
 ('sparse',
  (),
  'sparsity=0.5, std=0.01',
  'zeros',
  'per column, a fraction sparsity of zeros, the rest N(0, std^2) (Martens 2010)'),
 ('dirac',
  (),
  'gain=1.0, groups=1',
  'zeros',
  'convolution that copies its input channels (gain at the kernel centre)'),
 ('delta_orthogonal',
  (),
  'gain=1.0',
  'zeros',
  'orthogonal matrix at the kernel centre, zeros elsewhere (Xiao et al. 2018)'),
 ('critical',
  (),
  'sigma_b2=0.05, activation=tanh',
  'critical',
  'edge of chaos: N(0, sigma_w^2/fan_in), biases N(0, sigma_b2) (Schoenholz et al. 2017)'),
 ('critical_orthogonal',
  (),
  'sigma_b2=0.05, activation=tanh',
  'critical',
  'edge of chaos with orthogonal W (delta-orthogonal kernels), biases N(0, sigma_b2)'),
 ('lsuv',
  (),
  'tol=0.1, max_iter=10',
  'zeros',
  'data-dependent: orthonormal, then W /= sqrt(Var(layer output)) layer by layer (Mishkin & '
  'Matas 2016)'),
 ('dbn',
  (),
  'epochs=10, k=1, lr=0.1, hidden_lr=0.0, sampling=cd, visible=bernoulli, batch_size=100, '
  'weight_decay=0.0002, momentum=0.9, sparsity_target=0.0, sparsity_cost=0.0, '
  'lr_schedule=constant, pretrain_output=False, output_std=0.01, progress=False',
  'zeros',
  'data-dependent: greedy stack of RBMs trained with CD-k / PCD (Hinton et al. 2006)'))
# fmt: on


def live_rows() -> tuple[SchemeRow, ...]:
    """The rows from the registry itself (imports torch)."""
    from initlab.init import list_schemes

    return tuple(
        (
            scheme.name,
            tuple(scheme.aliases),
            ", ".join(f"{o.name}={o.default}" for o in scheme.options) or "-",
            scheme.bias,
            scheme.description,
        )
        for scheme in list_schemes()
    )


def write_rows(path: Path = Path(__file__)) -> None:
    """Rewrite :data:`SCHEME_ROWS` in this file from :func:`live_rows`."""
    text = path.read_text()
    start = text.index("# fmt: off\n") + len("# fmt: off\n")
    end = text.index("# fmt: on\n")
    body = "SCHEME_ROWS: tuple[SchemeRow, ...] = " + pprint.pformat(live_rows(), width=96) + "\n"
    path.write_text(text[:start] + body + text[end:])


if __name__ == "__main__":
    write_rows()
