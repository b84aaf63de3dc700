"""The core: a ``Lab`` (one run, its prefix, its registry of steps and their undo), its namespaces and
links, the names the kernel accepts, and the errors a user can act on. It imports nothing of cnilab above it."""
