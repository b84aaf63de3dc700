"""Stage 06 with the seed's setup: nodes are Docker containers, configured from outside.

These tests always ask for Docker nodes (the rest of the stage does with `--nodes=docker`); they
skip, saying why, where no Docker daemon runs. `.ci/run` starts a private one so CI runs them.
"""

import os

import pytest

from cnilab.runtime import cleanup
from cnilab.runtime.nodes import IMAGE, LABEL, require_docker
from cnilab.observe.probes import assert_ping, tcp_roundtrip, EchoServer


@pytest.fixture
def node_kind():
    """Override: Docker nodes whatever `--nodes` says; skips, saying why, without Docker."""
    return require_docker()


def containers_of(lab):
    import docker
    from cnilab.runtime.nodes import docker_host

    client = docker.DockerClient(base_url=docker_host())
    return {c.name: c for c in client.containers.list(filters={"label": f"{LABEL}={lab.prefix}"})}


def test_each_node_is_a_running_container_whose_namespace_the_lab_configures(lab, cluster, mode):
    running = containers_of(lab)
    assert sorted(running) == sorted(node.ns.name for node in cluster), f"the running node containers {sorted(running)} are not the cluster's nodes"
    for node in cluster:
        c = running[node.ns.name]
        assert c.image.tags == [IMAGE] and c.attrs["HostConfig"]["NetworkMode"] == "none", f"node container {c.name} must run the local image {IMAGE} with no Docker network, has {c.image.tags} / {c.attrs['HostConfig']['NetworkMode']}"
        pid = c.attrs["State"]["Pid"]
        assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{node.ns.name}").st_ino, \
            "the namespace the lab configures must be the container's own"
        assert node.ns.vxlan_info(node.vtep)["port"] == 4789, f"{node.vtep.name} in container {node.ns.short} does not send to UDP port 4789"


def test_pods_on_container_nodes_talk_across_nodes(cluster, mode):
    (src, _), (dst, dst_ip) = cluster[0].pods["n1p1"], cluster[2].pods["n3p2"]
    assert_ping(src, dst_ip, count=2)
    EchoServer(dst, 8080)
    assert tcp_roundtrip(src, dst_ip, 8080, b"across containers") == b"across containers", "the echo between pods in different containers came back changed"


def test_teardown_removes_the_containers(node_kind):
    from pathlib import Path

    from cnilab import Lab
    from cnilab.teach.recipe import load_stage

    stage6 = load_stage(6, Path(__file__).resolve().parents[1])
    with Lab() as lab:
        stage6.build(lab, "cluster", mode="routed", node_kind=node_kind)
        assert len(containers_of(lab)) == 3, f"expected the 3 node containers while the lab is up, found {containers_of(lab)}"
    assert containers_of(lab) == {}, f"node containers remain after teardown: {containers_of(lab)}"
    assert not cleanup.find({lab.prefix}), f"lab objects remain after teardown: {cleanup.find({lab.prefix}).describe()}"
