"""The bridge's own MAC, pinned (imported only by an ADD that finds its bridge not pinned yet).

Left to the kernel, a bridge takes the lowest MAC of its ports: when that pod goes, the gateway's
MAC changes and every other pod's ARP entry for it is wrong until it expires. A bridge whose address
was set explicitly (addr_assign_type 3, "set") keeps it whatever ports come and go. The plugin
creates its bridge with a MAC of its own; a bridge it finds that it did not pin (one an older
plugin, or an administrator, made) it pins to the MAC it has, once, and marks with its alias.
"""

from .netlink import _IFINFO, IFLA_ADDRESS, IFLA_IFALIAS, RTM_NEWLINK, Netlink, attr, cstr, mac_str


def pin(nl: Netlink, br: dict, random_mac, mark: str) -> dict:
    """Set bridge ``br``'s address explicitly: the one it has, or ``random_mac()`` where that is no usable
    unicast address. Mark it (alias ``mark``) unless someone else's alias is there; such a bridge is pinned
    again by every ADD, which changes nothing. Returns ``br`` as it is now."""
    raw = bytes.fromhex(br["mac"].replace(":", "")) if br["mac"] else b""
    if len(raw) != 6 or raw == bytes(6) or raw[0] & 1:
        raw = random_mac()
    body = _IFINFO.pack(0, 0, br["index"], 0, 0) + attr(IFLA_ADDRESS, raw)
    if not br["alias"]:
        body += attr(IFLA_IFALIAS, cstr(mark))
    nl.request(RTM_NEWLINK, 0, body)
    return {**br, "mac": mac_str(raw), "alias": br["alias"] or mark}
