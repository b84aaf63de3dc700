"""Stage 07, thick mode: the native shim hands calls to the node daemon, and runs the plugin itself
when no daemon answers -- with the same answers either way (cnilab's plugin only)."""

import shutil

import pytest

from cnilab.runtime.cni import Attachment, PluginDaemon, Runtime, install_plugin, is_thick
from cnilab.teach.recipe import stage_module

stage = stage_module(__file__)


@pytest.fixture
def thick_bin(tmp_path):
    """Name: thick_bin. Scope: function. A thick install of its own (the session's daemon stays out of it)."""
    if shutil.which("cc") is None:
        pytest.skip("thick mode needs a C compiler to build its shim: apt-get install -y gcc")
    bin_dir = tmp_path / "bin"
    install_plugin(bin_dir, source=stage.PLUGIN_SOURCE)
    assert is_thick(bin_dir / "cnilab"), f"{bin_dir / 'cnilab'} is not the thick (native shim) plugin"
    return bin_dir


def conflist(tmp_path):
    return stage.logged_conflist("thick", "1.1.0", "10.23.0.0/16", tmp_path)


def test_with_the_daemon_up_it_serves_and_without_it_the_shim_runs_the_plugin(lab, node, thick_bin, tmp_path):
    runtime = Runtime([thick_bin], tmp_path / "cache", node=node.name)
    conf = conflist(tmp_path)
    first, second = (Attachment(f"ctr-{p.short}", f"/run/netns/{p.name}") for p in (lab.netns("a"), lab.netns("b")))
    with PluginDaemon(thick_bin, source=stage.PLUGIN_SOURCE):
        by_daemon = runtime.add(conf, first)
    by_process = runtime.add(conf, second)
    calls = (tmp_path / "cnilab.log").read_text().splitlines()
    assert [c.rsplit(" ", 1)[1] for c in calls] == ["[daemon]", "[process]"], calls
    assert by_daemon.keys() == by_process.keys() and by_daemon["cniVersion"] == by_process["cniVersion"] == "1.1.0", "the daemon and a process-per-call plugin return results of different shape or version"
    assert [i["address"] for i in (by_daemon["ips"][0], by_process["ips"][0])] == ["10.23.0.2/16", "10.23.0.3/16"], "the daemon and the per-call plugin did not hand out consecutive addresses of one pool"
    assert "cni0" in node.links(), "the daemon's child worked in the caller's namespace (the node)"
    for att in (first, second):
        assert lab.get(att.netns.rsplit("/", 1)[1]).ip("eth0").startswith("10.23.0."), f"the pod of {att.container_id} has no address of 10.23.0.0/16 on eth0"
    with PluginDaemon(thick_bin, source=stage.PLUGIN_SOURCE):
        runtime.delete(conf, first)
        runtime.delete(conf, second)
    assert [n for n in node.links() if n.startswith("vc")] == [], "DEL through the daemon removed both veths"


def test_a_crash_in_a_daemon_child_reaches_the_runtime_as_a_killed_plugin(lab, node, thick_bin, tmp_path):
    from cnilab.runtime.cni import CNIError

    runtime = Runtime([thick_bin], tmp_path / "cache", node=node.name)
    pod = lab.netns("a")
    att = Attachment("ctr-a", f"/run/netns/{pod.name}")
    conf = conflist(tmp_path)
    with PluginDaemon(thick_bin, source=stage.PLUGIN_SOURCE) as daemon:
        with pytest.raises(CNIError) as err:
            runtime.exec_plugin("cnilab", "ADD", Runtime.plugin_confs(conf)[0],
                                {"CNI_CONTAINERID": att.container_id, "CNI_NETNS": att.netns, "CNI_IFNAME": att.ifname,
                                 "CNILAB_CNI_FAULT": "after-veth"})
        assert "exit 137" in str(err.value), f"the shim killed mid-call did not report exit 137: {err.value}"
        assert daemon.proc.poll() is None, "a crashing call takes only its own child down"
        assert [n for n in node.links() if n.startswith("vc")], "the crash came after the veth"
        runtime.delete(conf, att)
    assert [n for n in node.links() if n.startswith("vc")] == [], "host ends (vc*) remain on the node after every DEL"
