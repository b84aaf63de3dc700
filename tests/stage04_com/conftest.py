"""Stage 04 -- TCP between pods over the bridge.

The bridge of stage 03 carries any protocol. A TCP server listens in pod1, a
client in pod2 connects to pod1's address: the three-way handshake and the
payload cross the bridge exactly like ping did.
"""

from cnilab.observe.probes import EchoServer, listening_ports, tcp_roundtrip
from cnilab.teach.recipe import Recipe
from cnilab.core.step import ns_cmd
from cnilab.observe.trace import Trace, captured

recipe = Recipe(4, "TCP between pods over the bridge", base=3, here=__file__)

HINTS = [
    "cnilab.observe.probes.EchoServer(namespace, port) listens before it returns: no waiting needed.",
    "The server belongs in pod1: `EchoServer(pods[\"pod1\"], PORT)`; return it (tests count its connections).",
]
host, bridge, pods, ports = recipe.reuse("host", "bridge", "pods", "ports")

PORT = 7000


@recipe.fixture
def echo_server(lab, pods):
    """Name: echo_server. Scope: function. Depends: lab, pods.

    A TCP echo server listening on PORT in pod1 (what `socat TCP-LISTEN:7000,fork EXEC:cat` does).
    """
    # BEGIN SOLUTION: start a TCP echo server listening on PORT in pod1 and return it
    return EchoServer(pods["pod1"], PORT)
    # END SOLUTION


@recipe.trace
def tcp_handshake(lab):
    """pod2 connects to the echo server in pod1: SYN, SYN-ACK, ACK cross the bridge, then the bytes go
    there and back, and FIN closes it."""
    pod1, pod2, host = lab.get("pod1"), lab.get("pod2"), lab.get("host")
    if PORT not in listening_ports(pod1):
        EchoServer(pod1, PORT)  # a kept lab's server ended with the process that started it
    dst = pod1.ip("eth0")
    echoed, views = captured(lambda: tcp_roundtrip(pod2, dst, PORT, b"ping"), (host, "br0"))
    from scapy.layers.inet import TCP

    return Trace(ns_cmd(pod2.name, ["socat", "-", f"TCP:{dst}:{PORT}"]) + " <<< ping", echoed.decode(), views,
                 result=echoed, only=lambda p: TCP in p and PORT in (p[TCP].sport, p[TCP].dport))
