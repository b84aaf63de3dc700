"""cnilab: build container networking from Linux kernel primitives, and prove each step.

The library underneath the stages: a ``Lab`` owns a run and its namespaces,
links, addresses, routes, processes and captures, and tears them down.
"""

from .errors import LabError
from .lab import Lab

__all__ = ["Lab", "LabError"]
__version__ = "0.1.0"
