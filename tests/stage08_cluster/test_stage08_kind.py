"""Stage 08 on a real Kubernetes cluster: kind with three nodes and no CNI, then cnilab's DaemonSet.

The DaemonSet (plugin/deploy/daemonset.yaml) installs the plugin on every node and runs the node
agent with the ``kube`` backend: each node's pod subnet is the podCIDR the controller-manager gave
it, and each agent publishes its VTEP MAC in its Node's annotation. Two pods on two different
workers then reach each other across the routed VXLAN the agents programmed. The images are built
here from this checkout (ci/github-actions.yml builds them before the suite) and loaded into the
nodes with ``kind load``. Needs kind and a Docker daemon -- GitHub's runners; it skips, saying why,
elsewhere.
"""

import ipaddress
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from cnilab.runtime.nodes import docker_unavailable

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = "cnilab-kind8"
ANNOTATION = "cnilab.dev/vtep-mac"
BUSYBOX = "busybox:1.36"
IMAGES = {  # tag -> (Dockerfile, build context)
    "cnilab/cni-install:0.1": (ROOT / "plugin" / "deploy" / "Dockerfile", ROOT / "plugin"),
    "cnilab/agent:0.1": (ROOT / "plugin" / "deploy" / "Dockerfile.agent", ROOT),
}
KIND_CONFIG = """kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  disableDefaultCNI: true
  podSubnet: 10.244.0.0/16
nodes:
  - role: control-plane
  - role: worker
  - role: worker
"""


def kind_unavailable() -> str | None:
    """Why the kind tier cannot run here (stage 07's kind test asks the same), or None."""
    if shutil.which("kind") is None:
        return "the `kind` binary is not installed (and no kindest/node image can be had offline here)"
    reason = docker_unavailable()
    return f"kind needs Docker: {reason}" if reason else None


def sh(*cmd, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], check=kwargs.pop("check", True), text=True, **kwargs)


def build_images() -> None:
    """The cluster's images from this checkout (a cache hit when CI built them already); busybox for the pods."""
    for tag, (dockerfile, context) in IMAGES.items():
        sh("docker", "build", "-q", "-f", dockerfile, "-t", tag, context, stdout=subprocess.DEVNULL)
    if sh("docker", "image", "inspect", BUSYBOX, check=False, capture_output=True).returncode != 0:
        sh("docker", "pull", "-q", BUSYBOX)


def kubectl(*args, check=True) -> subprocess.CompletedProcess:
    """kubectl as the control-plane node has it (no kubectl needed on the machine running the tests)."""
    return sh("docker", "exec", f"{CLUSTER}-control-plane", "kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf",
              *args, check=check, capture_output=True)


def wait_until(what: str, probe, timeout: float, interval: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(interval)
    logs = kubectl("logs", "-n", "kube-system", "-l", "app=cnilab", "-c", "agent", "--tail", "30", "--prefix", check=False)
    raise AssertionError(f"{what} within {timeout:.0f}s; the agents said:\n{logs.stdout}{logs.stderr}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = kind_unavailable()
    if reason:
        pytest.skip(f"kind tier: {reason}; it runs in ci/github-actions.yml")
    from kubernetes import client, config, utils

    build_images()
    work = tmp_path_factory.mktemp("kind8")
    (work / "kind.yaml").write_text(KIND_CONFIG)
    sh("kind", "create", "cluster", "--name", CLUSTER, "--config", work / "kind.yaml",
       "--kubeconfig", work / "kubeconfig", "--wait", "0s")
    try:
        nodes = sh("kind", "get", "nodes", "--name", CLUSTER, capture_output=True).stdout.split()
        # kindest/node has no python3: the plugin needs one on every node (as in stage 07's kind test)
        installs = [subprocess.Popen(["docker", "exec", node, "sh", "-c",
                                      "apt-get update -qq && apt-get install -y -qq python3-minimal"]) for node in nodes]
        assert all(p.wait() == 0 for p in installs), "python3 could not be installed on the kind nodes"
        sh("kind", "load", "docker-image", "--name", CLUSTER, *IMAGES, BUSYBOX)
        config.load_kube_config(config_file=str(work / "kubeconfig"))
        utils.create_from_yaml(client.ApiClient(), str(ROOT / "plugin" / "deploy" / "daemonset.yaml"))
        yield client.CoreV1Api(), nodes
    finally:
        sh("kind", "delete", "cluster", "--name", CLUSTER, check=False)


def test_pods_on_two_workers_reach_each_other_over_the_agents_vxlan(cluster):
    api, nodes = cluster
    from kubernetes import client

    def annotated():
        found = {n.metadata.name: n for n in api.list_node().items
                 if n.spec.pod_cidr and ANNOTATION in (n.metadata.annotations or {})}
        return found if set(found) == set(nodes) else None

    leased = wait_until("not every node's agent published its VTEP MAC", annotated, timeout=420)
    workers = sorted(n for n in nodes if "worker" in n)
    assert len(workers) == 2, nodes
    for worker in workers:  # the agent rewrites the conflist for its lease: pods get addresses from it
        wait_until(f"the agent on {worker} did not write its conflist", timeout=60, probe=lambda: "/var/lib/cni/networks" in sh(
            "docker", "exec", worker, "cat", "/etc/cni/net.d/10-cnilab.conflist", check=False, capture_output=True).stdout)

    for pod, worker in zip(("pod-a", "pod-b"), workers):
        api.create_namespaced_pod("default", client.V1Pod(
            metadata=client.V1ObjectMeta(name=pod),
            spec=client.V1PodSpec(node_name=worker, termination_grace_period_seconds=0, containers=[client.V1Container(
                name="c", image=BUSYBOX, image_pull_policy="IfNotPresent", command=["sleep", "3600"])])))

    def ready(name):
        pod = api.read_namespaced_pod(name, "default")
        ok = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        return pod if ok and pod.status.pod_ip else None

    a = wait_until("pod-a did not become Ready", lambda: ready("pod-a"), timeout=300)
    b = wait_until("pod-b did not become Ready", lambda: ready("pod-b"), timeout=300)
    for pod, worker in ((a, workers[0]), (b, workers[1])):
        cidr = leased[worker].spec.pod_cidr
        assert ipaddress.ip_address(pod.status.pod_ip) in ipaddress.ip_network(cidr), (pod.metadata.name, pod.status.pod_ip, cidr)

    def pings():
        done = kubectl("exec", "pod-a", "--", "ping", "-c", "2", "-W", "3", b.status.pod_ip, check=False)
        return done if done.returncode == 0 else None

    done = wait_until(f"pod-a on {workers[0]} could not ping pod-b ({b.status.pod_ip}) on {workers[1]}", pings, timeout=60)
    assert "2 packets received" in done.stdout, done.stdout
