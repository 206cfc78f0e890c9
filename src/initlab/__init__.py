"""initlab: weight initialization, signal-propagation probes and the classic experiments."""

__version__ = "0.1.0"
