"""Stage 07, the kubelet's path: containerd's CRI plugin calls cnilab's plugin to bring pods up.

containerd runs privately inside the lab's node namespace; a small kubelet-like driver speaks
CRI v1 to it. Skips, saying why, where containerd, runc or the CRI client are missing.
"""

import json
import os
from pathlib import Path

import pytest

from cnilab import cri
from cnilab.errors import LabError
from cnilab.cni import install_plugin
from cnilab.recipe import stage_module

stage = stage_module(__file__)
REFERENCE_DIR = stage.REFERENCE_DIR
SUBNET_PREFIX = "10.88."
NETWORK = "k8s-pod-network"


@pytest.fixture
def kubelet(lab, node):
    """Name: kubelet. Scope: function. Depends: lab, node.

    containerd (CRI) on the node with cnilab as its only CNI network, and a CRI client.
    """
    reason = cri.unavailable()
    if reason:
        pytest.skip(f"containerd tier: {reason}")
    work = Path(f"/run/cnilab/{lab.prefix}ctrd")  # short: containerd's sockets live below it
    conf_dir, ipam, bin_dir = work / "net.d", work / "ipam", work / "bin"
    conf_dir.mkdir(parents=True)
    install_plugin(bin_dir, source=stage.PLUGIN_SOURCE)
    os.symlink(f"{REFERENCE_DIR}/loopback", bin_dir / "loopback")  # containerd always runs loopback too
    (conf_dir / "10-cnilab.conflist").write_text(json.dumps({"cniVersion": "1.0.0", "name": NETWORK, "plugins": [
        {"type": "cnilab", "bridge": "cni0", "mtu": 1500,
         "ipam": {"type": "cnilab", "subnet": f"{SUBNET_PREFIX}0.0/16", "dataDir": str(ipam)}}]}))
    containerd = cri.Containerd(node, work, bin_dir, conf_dir).start()
    client = cri.Kubelet(containerd.sock)
    client.work, client.ipam = work, ipam / NETWORK
    yield client
    for pod in client.pods():  # pods a failing test left: give them their DELs before containerd stops
        try:
            client.stop_pod(pod.id)
            client.remove_pod(pod.id)
        except (cri.CRIError, LabError):
            pass  # the test already failed for this; stopping containerd reaps what is left
    client.close()


def allocated(kubelet) -> dict[str, str]:
    d = kubelet.ipam
    return {n: (d / n).read_text().split("\n")[0] for n in os.listdir(d) if n[0].isdigit()} if d.is_dir() else {}


def test_run_pod_sandbox_is_ready_with_the_ip_cnilab_assigned(kubelet):
    sandbox, _ = kubelet.run_pod("web", kubelet.work / "logs")
    status = kubelet.pod_status(sandbox)
    assert status.state == kubelet.pb.SANDBOX_READY
    assert status.network.ip.startswith(SUBNET_PREFIX)
    assert allocated(kubelet) == {status.network.ip: sandbox}, "cnilab's IPAM holds the address for this sandbox"


def test_a_container_in_the_pod_reaches_a_second_pod_and_the_gateway(kubelet):
    web, web_config = kubelet.run_pod("web", kubelet.work / "logs")
    db, _ = kubelet.run_pod("db", kubelet.work / "logs")
    db_ip = kubelet.pod_status(db).network.ip
    app = kubelet.start_container(web, web_config, "app", ["/bin/sleep", "3600"])
    for target in (db_ip, f"{SUBNET_PREFIX}0.1"):
        answer = kubelet.exec(app, ["ping", "-c", "1", "-W", "2", target])
        assert answer.exit_code == 0, answer.stdout + answer.stderr


def test_stop_and_remove_give_the_ip_back_and_leave_nothing(kubelet, node):
    sandbox, _ = kubelet.run_pod("web", kubelet.work / "logs")
    ip = kubelet.pod_status(sandbox).network.ip
    netns_dir = kubelet.work / "state" / "io.containerd.grpc.v1.cri" / "netns"
    assert os.listdir(netns_dir), "containerd keeps the pod's namespace under its state dir"
    kubelet.stop_pod(sandbox)       # DEL with CNI_NETNS set
    assert ip not in allocated(kubelet), "StopPodSandbox must release the address (CNI DEL)"
    kubelet.remove_pod(sandbox)     # containerd sends a second DEL with CNI_NETNS empty
    assert kubelet.pods() == []
    assert [l for l in node.links() if l.startswith("vc")] == []
    assert os.listdir(netns_dir) == [], "the pod's network namespace is gone"
    again, _ = kubelet.run_pod("web2", kubelet.work / "logs")
    assert kubelet.pod_status(again).network.ip.startswith(SUBNET_PREFIX)
