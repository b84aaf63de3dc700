#!/usr/bin/env bash
# cnilab setup and entry point: installs what the lab needs, then runs it.
#
#   ./lab.sh          set up, then run the main job (every stage built and verified, verdict table)
#   ./lab.sh test     set up, then run the whole test suite (what CI runs)
#   ./lab.sh setup    only set up
#   ./lab.sh dockerd  start a private Docker daemon for the Docker-node tests (no bridge, no iptables)
#
# As a normal user it re-runs itself with sudo; as root (CI, containers) it runs as is.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then exec sudo -- "$0" "$@"; fi
  echo "lab.sh: cnilab needs root to create network namespaces: run it as root or install sudo." >&2
  exit 1
fi

# "what proves it is installed:package" (a command, a /path, or =package) -- a second run stays offline and fast.
# Stage 07 adds the reference CNI plugins (the yardstick) and containerd + runc (the kubelet's path);
# busybox-static is the only content of the locally built images (nothing is ever pulled);
# graphviz draws `cnilab show`'s pictures; gcc builds the plugin's native shim (thick mode).
# sudo: the design card's `sudo pytest -k stage05` works as written, also in a root shell.
# etcd-server: stage 08's store (the lab starts it in a namespace of its own; the package starts no daemon here).
APT=(ip:iproute2 iptables:iptables socat:socat ping:iputils-ping tcpdump:tcpdump iperf3:iperf3
     conntrack:conntrack modprobe:kmod ps:procps unshare:util-linux
     /usr/lib/cni/bridge:containernetworking-plugins containerd:containerd runc:runc
     =busybox-static:busybox-static dot:graphviz cc:gcc sudo:sudo etcd:etcd-server)   # "=pkg": the package itself (a dynamic busybox will not do)

setup_apt() {
  local missing=() entry probe
  for entry in "${APT[@]}"; do
    probe=${entry%%:*}
    case $probe in
      /*) [ -e "$probe" ] && continue ;;
      =*) dpkg -s "${probe#=}" >/dev/null 2>&1 && continue ;;
      *)  command -v "$probe" >/dev/null && continue ;;
    esac
    missing+=("${entry#*:}")
  done
  python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
  command -v python3 >/dev/null || missing+=(python3 python3-venv)
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "lab.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

setup_venv() {
  python3 - <<'PY' || { echo "lab.sh: cnilab needs Python >= 3.11 (found $(python3 -V 2>&1)): install a newer python3." >&2; exit 1; }
import sys; sys.exit(sys.version_info < (3, 11))
PY
  local stamp=.venv/.cnilab-installed want
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "lab.sh: installing cnilab into .venv"
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e ".[dev]"
    echo "$want" > "$stamp"
  fi
}

# `sudo pytest -k stage05` as the design card writes it: sudo's PATH has /usr/local/bin, never .venv/bin.
# The shim runs the pytest of the cnilab checkout or workbook it is called in, else the next pytest on PATH;
# a pytest someone else put at /usr/local/bin/pytest is left alone.
setup_pytest_shim() {
  local shim=/usr/local/bin/pytest
  if [ -e "$shim" ] && ! grep -q cnilab-pytest-shim "$shim" 2>/dev/null; then
    echo "lab.sh: $shim is not cnilab's: left as is (use .venv/bin/pytest)"; return
  fi
  cmp -s ci/pytest-shim.sh "$shim" || install -m 0755 ci/pytest-shim.sh "$shim"
}

setup() {
  setup_apt
  setup_venv
  setup_pytest_shim
}

# A Docker daemon of the lab's own: its socket, data and state under private paths, and no
# docker0 bridge, iptables rules or ip_forward change in the machine's namespace.
DOCKER_SOCK=/run/cnilab/docker.sock
start_dockerd() {
  if [ -S "$DOCKER_SOCK" ] && docker -H "unix://$DOCKER_SOCK" info >/dev/null 2>&1; then
    echo "lab.sh: the lab's dockerd already answers at $DOCKER_SOCK"; return
  fi
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "lab.sh: installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  mkdir -p /run/cnilab /var/lib/cnilab
  nohup dockerd --data-root /var/lib/cnilab/docker --exec-root /run/cnilab/docker-exec \
    -H "unix://$DOCKER_SOCK" --pidfile /run/cnilab/docker.pid \
    --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
    --userland-proxy=false >/var/lib/cnilab/dockerd.log 2>&1 &
  for _ in $(seq 1 150); do
    docker -H "unix://$DOCKER_SOCK" info >/dev/null 2>&1 && { echo "lab.sh: dockerd answers at $DOCKER_SOCK"; return; }
    sleep 0.2
  done
  echo "lab.sh: dockerd did not start; see /var/lib/cnilab/dockerd.log" >&2
  tail -5 /var/lib/cnilab/dockerd.log >&2
  exit 1
}

case "${1:-run}" in
  setup) setup ;;
  dockerd) start_dockerd ;;
  run)   setup; shift || true; exec .venv/bin/cnilab run "$@" ;;
  test)  setup; shift; exec .venv/bin/pytest "$@" ;;
  *)     echo "usage: $0 [run|test|setup|dockerd] [extra arguments]" >&2; exit 2 ;;
esac
