"""What a real cluster runs on every node: the DaemonSet and its installer (no root needed)."""

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "plugin" / "deploy"


class FakeAPI(BaseHTTPRequestHandler):
    nodes = {"node-a": {"spec": {"podCIDR": "10.244.7.0/24"}}, "fresh": {"spec": {}}}
    seen_auth: list = []

    def do_GET(self):  # noqa: N802 -- http.server's naming
        name = self.path.rsplit("/", 1)[-1]
        self.seen_auth.append(self.headers.get("Authorization"))
        body = json.dumps(self.nodes.get(name, {})).encode()
        self.send_response(200 if name in self.nodes else 404)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def api():
    server = HTTPServer(("127.0.0.1", 0), FakeAPI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def run_installer(tmp_path, port, node):
    sa = tmp_path / "sa"
    sa.mkdir(exist_ok=True)
    (sa / "token").write_text("secret-token\n")
    env = {**os.environ, "NODE_NAME": node, "KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(port),
           "CNILAB_API_SCHEME": "http", "CNILAB_SA_DIR": str(sa), "CNILAB_HOST_BIN": str(tmp_path / "bin"),
           "CNILAB_HOST_NETD": str(tmp_path / "net.d"), "CNILAB_HOST_PYTHON": sys.executable}
    return subprocess.run([sys.executable, str(DEPLOY / "install.py")], env=env, capture_output=True, text=True, timeout=60)


def test_installer_writes_the_conflist_from_the_nodes_pod_cidr_and_installs_the_plugin(tmp_path, api):
    done = run_installer(tmp_path, api, "node-a")
    assert done.returncode == 0, done.stderr
    assert FakeAPI.seen_auth[-1] == "Bearer secret-token"
    netd = tmp_path / "net.d"
    assert os.listdir(netd) == ["10-cnilab.conflist"], "only the finished file, no temporary left"
    conf = json.loads((netd / "10-cnilab.conflist").read_text())
    assert conf["plugins"][0]["type"] == "cnilab" and conf["plugins"][0]["ipam"]["subnet"] == "10.244.7.0/24"
    plugin = tmp_path / "bin" / "cnilab"
    version = subprocess.run([str(plugin)], input=b'{"cniVersion":"1.1.0"}', env={"CNI_COMMAND": "VERSION"},
                             capture_output=True, timeout=30)
    assert "1.1.0" in json.loads(version.stdout)["supportedVersions"]
    assert run_installer(tmp_path, api, "node-a").returncode == 0, "installing again (a restarted pod) works"


def test_installer_on_a_node_without_pod_cidr_says_why_in_one_line(tmp_path, api):
    done = run_installer(tmp_path, api, "fresh")
    assert done.returncode != 0
    assert "podCIDR" in done.stderr and done.stderr.strip().count("\n") == 0
    assert not (tmp_path / "net.d" / "10-cnilab.conflist").exists(), "no conflist for a node that cannot have one"


def test_daemonset_manifest_runs_the_installer_on_every_node():
    import yaml

    docs = {d["kind"]: d for d in yaml.safe_load_all((DEPLOY / "daemonset.yaml").read_text())}
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet"} <= set(docs)
    spec = docs["DaemonSet"]["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True and {"operator": "Exists"} in spec["tolerations"]
    init = spec["initContainers"][0]
    assert {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} in init["env"]
    mounts = {m["mountPath"] for m in init["volumeMounts"]}
    assert mounts == {"/host/opt/cni/bin", "/host/etc/cni/net.d"}
    assert {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]} in docs["ClusterRole"]["rules"]
