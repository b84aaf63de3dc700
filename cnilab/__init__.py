"""cnilab: build container networking from Linux kernel primitives, and prove each step.

The package is five layers; a module imports only from its own layer or the ones below it,
and no import goes in a circle (``tests/unit/test_layers.py`` checks both):

    cli, pytest_plugin      the commands and the pytest plugin: the only modules that know every layer
    teach, conformance      what people run: stages as recipes, demos, the workbook (teach); the CNI
                            conformance checker (conformance)
    cluster                 the cluster network of stage 08: the store (etcd), leases, the node agent's
                            loop (the datapath steps it runs are the recipes', handed in by teach)
    observe, runtime        reading a lab (probes, captures, diagnosis, pictures, traces) and running
                            things in it (nodes as containers, CNI runtimes, containerd, cleanup);
                            neither knows the other
    core                    a Lab, its namespaces and links, steps with their undo, names, errors

Every kernel change is a ``core.step.Step`` made through ``Lab.apply``, so it is narrated, recorded
and undone. The flat names of earlier versions (``cnilab.probes``, ``cnilab.recipe``...) still import:
they are the modules of the layers under their old names.
"""

from ._moved import install as _install_moved
from .core.errors import LabError
from .core.lab import Lab

_install_moved()

__all__ = ["Lab", "LabError"]
__version__ = "0.1.0"
