"""Does a VTEP answer? One ARP request on the underlay segment, made with scapy.

ARP never leaves the segment it is asked on, so asking about an address a lease names -- whatever
address a hostile store holds -- sends nothing past the node's own underlay switch.
"""

from __future__ import annotations

TIMEOUT = 0.3


def arp_answers(ifname: str, ip: str, tries: int = 2) -> bool:
    """True when ``ip`` answers an ARP request on ``ifname`` (of the calling process's namespace)."""
    from scapy.layers.l2 import ARP, Ether
    from scapy.sendrecv import srp1

    for _ in range(tries):
        answer = srp1(Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=ip), iface=ifname, timeout=TIMEOUT, verbose=False)
        if answer is not None and ARP in answer and answer[ARP].op == 2:
            return True
    return False


def warm() -> None:
    """Import scapy now (about a second), not at the first lease it must judge."""
    from scapy.layers.l2 import ARP  # noqa: F401
    from scapy.sendrecv import srp1  # noqa: F401
