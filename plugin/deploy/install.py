#!/usr/bin/env python3
"""Install cnilab's CNI plugin on one Kubernetes node (run by the DaemonSet's init container).

1. Ask the API server for this node's ``spec.podCIDR`` (service-account token; NODE_NAME from the
   downward API).
2. Copy the plugin into the host's CNI bin dir with the plugin's own installer (``cnilab_cni.install``).
3. Write the conflist atomically (temporary file + rename in the same directory): the container
   runtime watches the directory and must only ever see a complete file.

Standard library only; paths and the API address come from the environment so it can be tested
against a fake API server.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.request
from pathlib import Path

SA = Path(os.environ.get("CNILAB_SA_DIR", "/var/run/secrets/kubernetes.io/serviceaccount"))
HOST_BIN = Path(os.environ.get("CNILAB_HOST_BIN", "/host/opt/cni/bin"))
HOST_NETD = Path(os.environ.get("CNILAB_HOST_NETD", "/host/etc/cni/net.d"))
PLUGIN_SRC = Path(os.environ.get("CNILAB_PLUGIN_SRC", Path(__file__).resolve().parent.parent / "cnilab_cni"))
HOST_PYTHON = os.environ.get("CNILAB_HOST_PYTHON", "/usr/bin/python3")
sys.path.insert(0, str(PLUGIN_SRC.parent))
from cnilab_cni.install import install, write_atomic  # noqa: E402  (the plugin's own installer)


def pod_cidr(node: str) -> str:
    scheme = os.environ.get("CNILAB_API_SCHEME", "https")
    url = f"{scheme}://{os.environ['KUBERNETES_SERVICE_HOST']}:{os.environ['KUBERNETES_SERVICE_PORT']}/api/v1/nodes/{node}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {(SA / 'token').read_text().strip()}"})
    context = ssl.create_default_context(cafile=str(SA / "ca.crt")) if scheme == "https" else None
    with urllib.request.urlopen(request, context=context, timeout=10) as answer:
        cidr = json.load(answer).get("spec", {}).get("podCIDR")
    if not cidr:
        sys.exit(f"install: node {node} has no spec.podCIDR yet: is the controller-manager allocating node CIDRs?")
    return cidr


def conflist(cidr: str) -> dict:
    return {"cniVersion": "1.0.0", "name": "cnilab", "plugins": [
        {"type": "cnilab", "bridge": "cni0", "isGateway": True, "isDefaultGateway": True, "ipMasq": True, "mtu": int(os.environ.get("CNILAB_MTU", "1500")),
         "ipam": {"type": "cnilab", "subnet": cidr, "dataDir": "/var/lib/cni/cnilab"}},
        {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}]}


def main() -> int:
    node = os.environ.get("NODE_NAME")
    if not node:
        sys.exit("install: NODE_NAME is not set: pass it from the downward API (fieldRef spec.nodeName).")
    cidr = pod_cidr(node)
    # the node's python compiles on first use: the image's interpreter may differ from the node's
    install(HOST_BIN, python=HOST_PYTHON, precompile=False)
    HOST_NETD.mkdir(parents=True, exist_ok=True)
    write_atomic(HOST_NETD / "10-cnilab.conflist", json.dumps(conflist(cidr), indent=2))
    print(f"install: cnilab plugin in {HOST_BIN}, conflist for {cidr} in {HOST_NETD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
