"""Reference solutions: the answer key of the course, one module per topic.

Every name of the exercise contract (see the course spec) is importable from here.
"""

from solutions.feedforward import SwiGLU
from solutions.normalization import RMSNorm

__all__ = ["RMSNorm", "SwiGLU"]
