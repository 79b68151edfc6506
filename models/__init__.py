"""Model architectures with tfbin (or any larq) quantizers."""
from tfbin.models.small import fmnist_small

__all__ = ["fmnist_small"]
