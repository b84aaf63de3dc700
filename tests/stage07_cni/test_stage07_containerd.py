"""Stage 07, the kubelet's path: containerd's CRI plugin calls cnilab's plugin to bring pods up.

containerd runs privately inside the lab's node namespace; a small kubelet-like driver speaks
CRI v1 to it. Skips, saying why, where containerd, runc or the CRI client are missing.
"""

import os

import pytest

from cnilab.core.netns import ip_of
from cnilab.teach.recipe import stage_module

stage = stage_module(__file__)
SUBNET_PREFIX = stage.CRI_SUBNET_PREFIX


@pytest.fixture
def kubelet(lab, node):
    """Name: kubelet. Scope: function. Depends: lab, node. The stage's kubelet (containerd + CRI client)."""
    client, why = stage.kubelet_on(lab, node)
    if client is None:
        pytest.skip(f"containerd tier: {why}")
    return client


def allocated(kubelet) -> dict[str, str]:
    d = kubelet.ipam
    return {n: (d / n).read_text().split("\n")[0] for n in os.listdir(d) if n[0].isdigit()} if d.is_dir() else {}


def test_run_pod_sandbox_is_ready_with_the_ip_cnilab_assigned(kubelet):
    sandbox, _ = kubelet.run_pod("web", kubelet.work / "logs")
    status = kubelet.pod_status(sandbox)
    assert status.state == kubelet.pb.SANDBOX_READY, f"CRI reports the sandbox {status.state}, not SANDBOX_READY"
    assert status.network.ip.startswith(SUBNET_PREFIX), f"the pod's IP {status.network.ip!r} is not from the network's subnet {SUBNET_PREFIX}*"
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
    assert kubelet.pods() == [], f"pods remain after RemovePodSandbox: {kubelet.pods()}"
    assert [l for l in node.links() if l.startswith("vc")] == [], "the host ends (vc*) of removed pods remain on the node"
    assert os.listdir(netns_dir) == [], "the pod's network namespace is gone"
    again, _ = kubelet.run_pod("web2", kubelet.work / "logs")
    assert kubelet.pod_status(again).network.ip.startswith(SUBNET_PREFIX), "a pod created again gets no address from the subnet"


@pytest.mark.parametrize("runtime", ["containerd", "cnilab-runtime"])
def test_a_pod_comes_up_and_the_plugin_logs_the_call(lab, node, runtime, monkeypatch):
    """The demo's scene, both ways: the pod's address is the one the plugin logged."""
    from cnilab.runtime import cri

    if runtime == "containerd" and cri.unavailable():
        pytest.skip(f"containerd tier: {cri.unavailable()}")
    if runtime == "cnilab-runtime":
        monkeypatch.setattr(cri, "unavailable", lambda: "containerd left out on purpose")
    trace = stage.pod_comes_up(lab)
    assert ("crictl" in trace.probe) is (runtime == "containerd"), f"the trace used {trace.probe!r}, expected crictl exactly for the containerd runtime"
    adds = [line for line in trace.log if " ADD " in line and " -> ok " in line]
    assert len(adds) == 1, f"expected one successful ADD in the plugin's log, got {trace.log}"
    assert ip_of(adds[0].split(" -> ok ")[1].split()[0]) == ip_of(trace.result), f"the ADD logged {adds[0]!r}, which does not name the pod's address {trace.result}"
    assert "ifname=eth0" in adds[0], f"the runtime's ADD does not use ifname=eth0: {adds[0]!r}"
