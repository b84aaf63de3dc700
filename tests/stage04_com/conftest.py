"""Stage 04 -- TCP between pods over the bridge.

The bridge of stage 03 carries any protocol. A TCP server listens in pod1, a
client in pod2 connects to pod1's address: the three-way handshake and the
payload cross the bridge exactly like ping did.
"""

from cnilab.probes import EchoServer
from cnilab.recipe import Recipe

recipe = Recipe(4, "TCP between pods over the bridge", base=3)

HINTS = [
    "cnilab.probes.EchoServer(namespace, port) listens before it returns: no waiting needed.",
    "The server belongs in pod1: `EchoServer(pods[\"pod1\"], PORT)`; return it (tests count its connections).",
]
host, bridge, pods = recipe.reuse("host", "bridge", "pods")

PORT = 7000


@recipe.fixture
def echo_server(lab, pods):
    """Name: echo_server. Scope: function. Depends: lab, pods.

    A TCP echo server listening on PORT in pod1 (what `socat TCP-LISTEN:7000,fork EXEC:cat` does).
    """
    # BEGIN SOLUTION: start a TCP echo server listening on PORT in pod1 and return it
    return EchoServer(pods["pod1"], PORT)
    # END SOLUTION
