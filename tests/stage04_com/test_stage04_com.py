"""Stage 04 proofs: bytes cross intact, the handshake is visible, and refused differs from unreachable."""

import os
import socket

import pytest

from cnilab.observe.probes import assert_ping, socat_roundtrip, socat_server, tcp_roundtrip
from cnilab.core.netns import ip_of
from cnilab.teach.recipe import load_conftest, stage_module

stage = stage_module(__file__)

POD1 = ip_of(load_conftest(stage.recipe.base.path).POD_IPS["pod1"])
PORT = stage.PORT


def test_payload_is_echoed_byte_exact(echo_server, pods):
    payload = os.urandom(256 * 1024)
    assert tcp_roundtrip(pods["pod2"], POD1, PORT, payload) == payload, "the echo came back changed"
    assert echo_server.accepted == 1, f"the echo server counted {echo_server.accepted} connections, not the 1 made"


def test_the_seed_socat_way(pods):
    socat_server(pods["pod1"], 7001)
    payload = b"hello from pod2 via socat\n"
    assert socat_roundtrip(pods["pod2"], POD1, 7001, payload) == payload, "socat's echo came back changed"


def test_no_listener_is_refused_not_a_timeout(pods):
    """Reachable host, closed port: the kernel answers RST at once."""
    assert_ping(pods["pod2"], POD1, count=1)  # the host is reachable: the refusal is about the port
    with pytest.raises(ConnectionRefusedError):
        tcp_roundtrip(pods["pod2"], POD1, 7999, b"x", timeout=3)


def test_unreachable_pod_is_a_timeout_not_a_refusal(echo_server, pods, ports):
    """Negative proof: the echo works; then, with pod1's port off the bridge, nothing answers, not even RST."""
    assert tcp_roundtrip(pods["pod2"], POD1, PORT, b"x") == b"x", "the echo must work before the port is taken away"
    ports["pod1"].nomaster()
    with pytest.raises(socket.timeout):
        tcp_roundtrip(pods["pod2"], POD1, PORT, b"x", timeout=0.5)


def test_handshake_is_captured_on_the_bridge(lab, echo_server, pods):
    from scapy.layers.inet import TCP

    trace = stage.tcp_handshake(lab)
    assert trace.result == b"ping" and echo_server.accepted == 1, "the trace must use the running echo server"
    seen = trace.view("host br0")
    tcp = [p[TCP] for p in seen.packets if TCP in p and PORT in (p[TCP].sport, p[TCP].dport)]
    flags = [str(t.flags) for t in tcp]
    assert flags[:3] == ["S", "SA", "A"], f"expected SYN, SYN-ACK, ACK first; saw {flags}\n{seen.summary()}"
    syn, synack = tcp[0], tcp[1]
    assert syn.dport == PORT and synack.sport == PORT and synack.ack == syn.seq + 1, (
        f"the SYN-ACK does not answer the SYN: {syn.summary()} / {synack.summary()}")
