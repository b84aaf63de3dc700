"""What a kernel or iptables refusal usually means: the sentence after "failed" that names the fix.

Kept apart from the code that calls the kernel so that every refusal, wherever it happens, is
explained the same way.
"""

from __future__ import annotations

import errno
from contextlib import contextmanager
from typing import Iterator, Sequence

from .errors import LabError

#: errno -> what it usually means for a lab step (appended to "`COMMAND` failed: REASON (errno N)")

ERRNO_MEANINGS = {
    errno.EEXIST: ": it exists already -- the step ran twice, or two objects were given one name.",
    errno.ENODEV: ": no such link in that namespace -- check the link's name and which namespace holds it.",
    errno.EADDRNOTAVAIL: ": that address is not there -- check the address, its prefix length and which link holds it.",
    errno.ENETUNREACH: (": no subnet of that namespace contains the gateway -- a next hop must sit on a directly "
                        "connected subnet (give it the right address, or route via an address of that subnet)."),
    errno.EINVAL: ": the kernel found an argument invalid -- check names, prefix lengths and values.",
    errno.EPERM: ": not permitted -- run as root (CAP_NET_ADMIN).",
}


def _in_context(command: str, code: int) -> str:
    """What a refusal means for the kinds of step where the general meaning would mislead."""
    words = command.split()
    ns = words[words.index("-n") + 1] if "-n" in words else "the namespace"
    if code == errno.EEXIST and "route" in words and "add" in words:
        return (f": {ns} already has a route to that destination -- routes belong to one namespace: check that this "
                "is the namespace that needs it (a pod's route belongs in the pod) and that no other step added it.")
    if code == errno.EEXIST and "fdb" in words and "00:00:00:00:00:00" in words:
        return (": that VXLAN device already has a flood (all-zeros) entry -- one per peer needs `bridge fdb append` "
                "(append=True), which adds a destination instead of replacing the entry.")
    return ""


def iptables_advice(table: str, rule: Sequence[str]) -> str:
    """What an iptables refusal of ``rule`` usually means, for the mistakes students make with NAT."""
    chain = rule[1] if len(rule) > 1 else ""
    nat_target = any(t in rule for t in ("MASQUERADE", "SNAT"))
    if nat_target and table != "nat":
        return "MASQUERADE and SNAT exist only in the nat table: pass table=\"nat\" (`iptables -t nat ...`)."
    if nat_target and chain != "POSTROUTING":
        return ("Source NAT belongs in the nat table's POSTROUTING chain: only after routing is the outgoing "
                "interface (-o) known.")
    if "-o" in rule and chain in ("PREROUTING", "INPUT"):
        return "No outgoing interface (-o) exists yet in PREROUTING or INPUT: match it in POSTROUTING or FORWARD."
    return ""


@contextmanager
def iptables_explained(table: str, rule: Sequence[str]) -> Iterator[None]:
    """A refused iptables call, re-raised with what the refusal usually means (when it is a known slip)."""
    try:
        yield
    except LabError as exc:
        advice = iptables_advice(table, rule)
        if not advice:
            raise
        raise LabError(f"{exc} {advice}") from None


class StepFailed(LabError):
    """The kernel refused a lab step: the step's command, the kernel's reason and what it usually means.

    ``errno`` stays readable for code that tells reasons apart."""

    def __init__(self, command: str, code: int, reason: str):
        self.errno = code
        meaning = _in_context(command, code) or ERRNO_MEANINGS.get(code, "")
        super().__init__(f"`{command}` failed: {reason} (errno {code}){meaning}")


#: the Debian package of each tool the lab runs inside namespaces
TOOL_PACKAGES = {"ping": "iputils-ping", "iptables": "iptables", "socat": "socat", "tcpdump": "tcpdump",
                 "iperf3": "iperf3", "conntrack": "conntrack", "sysctl": "procps"}
