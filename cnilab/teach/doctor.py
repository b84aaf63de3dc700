"""``cnilab doctor``: can this machine run the lab? Each finding says how to fix it."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

CAP_NET_ADMIN = 12

# command -> (Debian package, needed for)
TOOLS = {
    "ip": ("iproute2", "every stage", True),
    "ping": ("iputils-ping", "every stage", True),
    "socat": ("socat", "stage 04", True),
    "iptables": ("iptables", "stages 01, 05", True),
    "conntrack": ("conntrack", "stage 05", False),
    "tcpdump": ("tcpdump", "capture filters, debugging", False),
    "iperf3": ("iperf3", "benchmarks", False),
    "dot": ("graphviz", "pictures: cnilab show, demos, --keep", False),
    "cc": ("gcc", "stage 07 thick mode (the plugin's native shim)", False),
}


@dataclass
class Finding:
    check: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def _cap_eff() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def check_privileges() -> Finding:
    ok = os.geteuid() == 0 and bool(_cap_eff() >> CAP_NET_ADMIN & 1)
    return Finding("root / CAP_NET_ADMIN", ok, "yes" if ok else "not root or no CAP_NET_ADMIN",
                   "run with sudo (e.g. `sudo .venv/bin/cnilab doctor`)")


def check_tools() -> list[Finding]:
    out = []
    for cmd, (pkg, why, required) in TOOLS.items():
        path = shutil.which(cmd)
        out.append(Finding(f"tool `{cmd}` ({why})", bool(path), path or "missing",
                           f"apt-get install -y {pkg}", required))
    return out


def check_kernel() -> list[Finding]:
    """Try each kernel feature for real, in a throwaway lab (nothing touches the root namespace)."""
    from ..core.lab import Lab

    results: list[Finding] = []

    def attempt(name: str, fix: str, fn) -> None:
        try:
            fn()
            results.append(Finding(f"kernel: {name}", True, "works"))
        except Exception as exc:  # noqa: BLE001 -- the finding reports it
            results.append(Finding(f"kernel: {name}", False, str(exc).splitlines()[0][:80], fix))

    with Lab() as lab:
        box = {}
        attempt("network namespaces", "a kernel with CONFIG_NET_NS", lambda: box.setdefault("ns", lab.netns("doctor")))
        ns = box.get("ns")
        if ns is None:
            return results
        attempt("veth", "modprobe veth (CONFIG_VETH)", lambda: ns.veth("dv0"))
        attempt("bridge", "modprobe bridge (CONFIG_BRIDGE)", lambda: ns.bridge("dbr0"))
        attempt("vxlan", "modprobe vxlan (CONFIG_VXLAN)",
                lambda: ns.vxlan("dvx", 42, local="192.0.2.1"))
        if shutil.which("iptables"):
            attempt("nat (iptables MASQUERADE)", "modprobe nf_nat nft_chain_nat (CONFIG_NF_NAT)",
                    lambda: ns.iptables("-A", "POSTROUTING", "-o", "lo", "-j", "MASQUERADE", table="nat"))
    return results


def run_doctor(console: Console | None = None) -> int:
    console = console or Console()
    findings = [check_privileges(), *check_tools()]
    if findings[0].ok:
        findings += check_kernel()
    table = Table(title="cnilab doctor")
    for col in ("check", "status", "detail", "fix"):
        table.add_column(col)
    for f in findings:
        status = "[green]ok[/]" if f.ok else ("[red]missing[/]" if f.required else "[yellow]optional[/]")
        table.add_row(f.check, status, f.detail, "" if f.ok else f.fix)
    console.print(table)
    bad = [f for f in findings if f.required and not f.ok]
    if bad:
        console.print(f"[red]{len(bad)} required check(s) failed[/]: fix them as the table says, then run `cnilab doctor` again.")
    else:
        console.print("[green]This machine can run every namespace stage.[/]")
    return 1 if bad else 0
