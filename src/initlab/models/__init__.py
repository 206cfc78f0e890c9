"""Model builders: MLPs and CNNs from one vocabulary, and deep vanilla networks."""

from initlab.models.cnn import cnn, deep_cnn
from initlab.models.mlp import MLP, MLPSpec, deep_mlp, mlp

__all__ = ["MLP", "MLPSpec", "cnn", "deep_cnn", "deep_mlp", "mlp"]
