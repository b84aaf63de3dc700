"""Stage 07, the seed's demo made a test: a kind cluster without a CNI, then cnilab installed.

A Pod stays Pending while the nodes have no CNI; once the plugin and a conflist (from the node's
podCIDR) are in the node, the kubelet brings it up and it runs with an IP from cnilab. Needs kind
and a Docker daemon that can pull kindest/node -- GitHub's runners (ci/github-actions.yml); it
skips, saying why, elsewhere.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from cnilab.runtime.cni import install_plugin
from cnilab.runtime.nodes import docker_unavailable

CLUSTER = "cnilab-kind"
KIND_CONFIG = """kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  disableDefaultCNI: true
  podSubnet: 10.244.0.0/16
"""


def kind_unavailable() -> str | None:
    if shutil.which("kind") is None:
        return "the `kind` binary is not installed (and no kindest/node image can be had offline here)"
    reason = docker_unavailable()
    return f"kind needs Docker: {reason}" if reason else None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = kind_unavailable()
    if reason:
        pytest.skip(f"kind tier: {reason}; it runs in ci/github-actions.yml")
    from kubernetes import client, config

    work = tmp_path_factory.mktemp("kind")
    (work / "kind.yaml").write_text(KIND_CONFIG)
    subprocess.run(["kind", "create", "cluster", "--name", CLUSTER, "--config", str(work / "kind.yaml"),
                    "--kubeconfig", str(work / "kubeconfig"), "--wait", "0s"], check=True)
    try:
        config.load_kube_config(config_file=str(work / "kubeconfig"))
        yield client.CoreV1Api(), work
    finally:
        subprocess.run(["kind", "delete", "cluster", "--name", CLUSTER], check=False)


def wait_pod(api, name, phase, timeout):
    from kubernetes import watch

    w = watch.Watch()
    for event in w.stream(api.list_namespaced_pod, "default", field_selector=f"metadata.name={name}",
                          timeout_seconds=timeout):
        pod = event["object"]
        if pod.status.phase == phase:
            w.stop()
            return pod
    raise AssertionError(f"pod {name} did not reach {phase} within {timeout}s")


def test_pod_is_pending_without_cni_then_running_with_an_ip_from_cnilab(cluster):
    api, work = cluster
    from kubernetes import client

    pod = client.V1Pod(metadata=client.V1ObjectMeta(name="hello"), spec=client.V1PodSpec(
        containers=[client.V1Container(name="c", image="registry.k8s.io/pause:3.9")]))
    api.create_namespaced_pod("default", pod)
    pending = api.read_namespaced_pod("hello", "default")
    assert pending.status.phase == "Pending" and not pending.status.pod_ip, "no CNI yet: no pod network"

    node = f"{CLUSTER}-control-plane"
    pod_cidr = api.read_node(node).spec.pod_cidr
    source = Path(__file__).resolve().parents[2] / "plugin"
    bin_dir = install_plugin(work / "bin", python="/usr/bin/python3", source=source).parent
    # kindest/node has no python3: the plugin needs one on every node
    subprocess.run(["docker", "exec", node, "sh", "-c", "apt-get update -qq && apt-get install -y -qq python3-minimal"],
                   check=True)
    subprocess.run(["docker", "cp", f"{bin_dir}/.", f"{node}:/opt/cni/bin/"], check=True)
    conflist = {"cniVersion": "1.0.0", "name": "cnilab", "plugins": [
        {"type": "cnilab", "bridge": "cni0", "isGateway": True, "isDefaultGateway": True, "ipMasq": True,
         "ipam": {"type": "cnilab", "subnet": pod_cidr, "dataDir": "/var/lib/cni/cnilab"}}]}
    (work / "10-cnilab.conflist").write_text(json.dumps(conflist))
    subprocess.run(["docker", "cp", str(work / "10-cnilab.conflist"), f"{node}:/etc/cni/net.d/.10-cnilab.tmp"], check=True)
    subprocess.run(["docker", "exec", node, "mv", "/etc/cni/net.d/.10-cnilab.tmp", "/etc/cni/net.d/10-cnilab.conflist"],
                   check=True)  # atomically: the runtime watches the directory

    running = wait_pod(api, "hello", "Running", timeout=300)
    import ipaddress

    assert ipaddress.ip_address(running.status.pod_ip) in ipaddress.ip_network(pod_cidr), (running.status.pod_ip, pod_cidr)
