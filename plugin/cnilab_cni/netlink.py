"""The rtnetlink messages the plugin needs, encoded with ``struct``.

Why by hand: importing pyroute2 costs ~250 ms per plugin call, 30x the reference
plugin's whole ADD. These ~15 message shapes are all the plugin sends.
"""

import os
import struct

import _socket  # `socket` costs ~9 ms to import; its C core is enough

NETLINK_ROUTE = 0
SOL_NETLINK, NETLINK_EXT_ACK = 270, 11
NLMSG_ERROR, NLMSG_DONE = 2, 3
F_DUMP_INTR, F_ACK_TLVS = 0x10, 0x200  # a dump changed under us; an error carries extended-ack attributes
NLMSGERR_ATTR_MSG = 1
DUMP_RETRIES = 10
ENOENT, EEXIST, ENODEV = 2, 17, 19
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
F_REQUEST, F_ACK, F_DUMP, F_EXCL, F_CREATE = 0x1, 0x4, 0x300, 0x200, 0x400
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_IFALIAS, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 4, 10, 20, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY = 1, 4, 5
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1
IFF_UP = 0x1
NLA_F_NESTED = 0x8000
AF_INET = 2

_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_HDR = struct.Struct("=IHHII")


class NetlinkError(OSError):
    pass


def split_messages(data: bytes, seq: int):
    """(type, flags, payload) of each message in ``data`` that answers request ``seq``."""
    offset = 0
    while offset + _HDR.size <= len(data):
        size, mtype, mflags, mseq, _pid = _HDR.unpack_from(data, offset)
        if size < _HDR.size:
            return
        if mseq == seq:
            yield mtype, mflags, data[offset + _HDR.size:offset + size]
        offset += (size + 3) & ~3


def raise_error(mtype: int, mflags: int, payload: bytes) -> None:
    """An ERROR (an ACK when its code is 0) or a DONE (its error word, when the kernel sends one) as NetlinkError."""
    if len(payload) < 4:
        return
    code = -struct.unpack_from("=i", payload)[0]
    if not code:
        return
    why = ""
    if mtype == NLMSG_ERROR and mflags & F_ACK_TLVS:
        # after the error word comes the request: its header alone when the kernel capped it (NLM_F_CAPPED,
        # 0x100), else the whole request; the attributes follow it
        offered = struct.unpack_from("=I", payload, 4)[0] if len(payload) >= 8 else 0
        tlvs = parse_attrs(payload, 4 + (offered if not mflags & 0x100 else _HDR.size))
        why = tlvs.get(NLMSGERR_ATTR_MSG, b"").rstrip(b"\0").decode(errors="replace")
    raise NetlinkError(code, os.strerror(code) + (f" (kernel: {why})" if why else ""))


def attr(kind: int, data: bytes) -> bytes:
    size = 4 + len(data)
    return struct.pack("=HH", size, kind) + data + b"\0" * ((4 - size % 4) % 4)


def nested(kind: int, *attrs: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(attrs))


def cstr(s: str) -> bytes:
    return s.encode() + b"\0"


def u32(v: int) -> bytes:
    return struct.pack("=I", v)


def parse_attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    out = {}
    while offset + 4 <= len(data):
        size, kind = struct.unpack_from("=HH", data, offset)
        if size < 4:
            break
        out[kind & ~NLA_F_NESTED] = data[offset + 4:offset + size]
        offset += (size + 3) & ~3
    return out


def mac_str(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


class Netlink:
    """One rtnetlink socket, bound to the network namespace it was opened in."""

    def __init__(self) -> None:
        self.sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW, NETLINK_ROUTE)
        try:  # extended ACKs: a refusal comes with the kernel's reason
            self.sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        except OSError:
            pass
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def request(self, kind: int, flags: int, body: bytes) -> list[tuple[int, bytes]]:
        """Send one message; return (type, payload) of the replies, raising on a netlink error.

        A dump the kernel marks interrupted (NLM_F_DUMP_INTR: the table changed while it was read)
        is asked again, as the reference plugins' netlink library does."""
        for _ in range(DUMP_RETRIES if flags & F_DUMP else 1):
            self.seq += 1
            self.sock.send(_HDR.pack(_HDR.size + len(body), kind, flags | F_REQUEST | F_ACK, self.seq, 0) + body)
            replies, interrupted = self._replies()
            if not interrupted:
                return replies
        raise NetlinkError(4, f"the kernel's dump kept changing while it was read ({DUMP_RETRIES} tries)")  # EINTR

    def _replies(self) -> tuple[list[tuple[int, bytes]], bool]:
        replies: list[tuple[int, bytes]] = []
        interrupted = False
        while True:
            data = self.sock.recv(1 << 16)
            for mtype, mflags, payload in split_messages(data, self.seq):
                interrupted |= bool(mflags & F_DUMP_INTR)
                if mtype in (NLMSG_ERROR, NLMSG_DONE):
                    raise_error(mtype, mflags, payload)
                    return replies, interrupted
                replies.append((mtype, payload))

    # -- links ------------------------------------------------------------------
    def link(self, name: str) -> dict | None:
        """index, mac, mtu, master, flags of link ``name``, or None."""
        try:
            replies = self.request(RTM_GETLINK, 0, _IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, cstr(name)))
        except NetlinkError as exc:
            if exc.errno in (ENODEV, ENOENT):
                return None
            raise
        return self._link_info(replies[0][1]) if replies else None

    def links(self) -> list[dict]:
        return [self._link_info(p) for _, p in self.request(RTM_GETLINK, F_DUMP, _IFINFO.pack(0, 0, 0, 0, 0))]

    @staticmethod
    def _link_info(payload: bytes) -> dict:
        _fam, _type, index, flags, _change = _IFINFO.unpack_from(payload)
        a = parse_attrs(payload, _IFINFO.size)
        kind = parse_attrs(a[IFLA_LINKINFO]).get(IFLA_INFO_KIND, b"").rstrip(b"\0").decode() if IFLA_LINKINFO in a else ""
        return {
            "index": index, "flags": flags, "kind": kind,
            "name": a.get(IFLA_IFNAME, b"").rstrip(b"\0").decode(),
            "mac": mac_str(a.get(IFLA_ADDRESS, b"")),
            "mtu": struct.unpack("=I", a[IFLA_MTU])[0] if IFLA_MTU in a else 0,
            "master": struct.unpack("=I", a[IFLA_MASTER])[0] if IFLA_MASTER in a else 0,
            "alias": a.get(IFLA_IFALIAS, b"").rstrip(b"\0").decode(errors="replace"),
        }

    def add_bridge(self, name: str, mtu: int, mac: bytes | None = None) -> None:
        """A bridge; with ``mac`` its own address, which the kernel then never changes as ports come and go."""
        self.request(RTM_NEWLINK, F_CREATE | F_EXCL, _IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, cstr(name))
                     + attr(IFLA_MTU, u32(mtu)) + (attr(IFLA_ADDRESS, mac) if mac else b"")
                     + nested(IFLA_LINKINFO, attr(IFLA_INFO_KIND, b"bridge")))

    def set_alias(self, index: int, alias: str) -> None:
        self.request(RTM_NEWLINK, 0, _IFINFO.pack(0, 0, index, 0, 0) + attr(IFLA_IFALIAS, cstr(alias)))

    def add_veth(self, name: str, peer: str, peer_netns_fd: int, mtu: int) -> None:
        """A veth pair whose peer is born in another namespace (by fd) under its final name."""
        peer_msg = (_IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, cstr(peer)) + attr(IFLA_MTU, u32(mtu))
                    + attr(IFLA_NET_NS_FD, u32(peer_netns_fd)))
        self.request(RTM_NEWLINK, F_CREATE | F_EXCL, _IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, cstr(name))
                     + attr(IFLA_MTU, u32(mtu))
                     + nested(IFLA_LINKINFO, attr(IFLA_INFO_KIND, b"veth"),
                              nested(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer_msg))))

    def set_link(self, index: int, *, up: bool | None = None, master: int | None = None) -> None:
        flags = change = 0
        if up is not None:
            flags, change = (IFF_UP if up else 0), IFF_UP
        body = _IFINFO.pack(0, 0, index, flags, change)
        if master is not None:
            body += attr(IFLA_MASTER, u32(master))
        self.request(RTM_NEWLINK, 0, body)

    def del_link(self, name: str) -> bool:
        """Delete link ``name``; False if it did not exist."""
        try:
            self.request(RTM_DELLINK, 0, _IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, cstr(name)))
            return True
        except NetlinkError as exc:
            if exc.errno in (ENODEV, ENOENT):
                return False
            raise

    # -- addresses and routes -----------------------------------------------------
    def add_addr(self, index: int, ip: str, prefixlen: int) -> None:
        raw = _socket.inet_aton(ip)
        try:
            self.request(RTM_NEWADDR, F_CREATE | F_EXCL, _IFADDR.pack(AF_INET, prefixlen, 0, 0, index)
                         + attr(IFA_LOCAL, raw) + attr(IFA_ADDRESS, raw))
        except NetlinkError as exc:
            if exc.errno != EEXIST:  # the bridge already holds the gateway
                raise

    def addrs(self, index: int | None = None) -> list[tuple[int, str, int]]:
        """(ifindex, ip, prefixlen) of IPv4 addresses."""
        out = []
        for _, p in self.request(RTM_GETADDR, F_DUMP, _IFADDR.pack(AF_INET, 0, 0, 0, 0)):
            _fam, plen, _fl, _sc, idx = _IFADDR.unpack_from(p)
            a = parse_attrs(p, _IFADDR.size)
            raw = a.get(IFA_LOCAL) or a.get(IFA_ADDRESS)
            if raw and (index is None or idx == index):
                out.append((idx, _socket.inet_ntoa(raw), plen))
        return out

    def add_route(self, dst: str, prefixlen: int, gateway: str, oif: int) -> None:
        body = _RTMSG.pack(AF_INET, prefixlen, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
        if prefixlen:
            body += attr(RTA_DST, _socket.inet_aton(dst))
        body += attr(RTA_GATEWAY, _socket.inet_aton(gateway)) + attr(RTA_OIF, u32(oif))
        try:
            self.request(RTM_NEWROUTE, F_CREATE | F_EXCL, body)
        except NetlinkError as exc:
            if exc.errno != 101:  # ENETUNREACH: the kernel finds no up link whose subnet holds the gateway
                raise
            link = next((x for x in self.links() if x["index"] == oif), None)
            held = ", ".join(f"{ip}/{plen}" for _, ip, plen in self.addrs(oif)) or "no address"
            state = "down" if link is None or not link["flags"] & IFF_UP else "up"
            raise NetlinkError(exc.errno, f"route {dst}/{prefixlen} via {gateway}: the gateway is unreachable from "
                               f"{link['name'] if link else oif}, which is {state} and holds {held} -- the link must be "
                               f"up and its address's prefix must contain the gateway") from None

    def routes(self) -> list[tuple[str, int, str | None, int]]:
        """(dst, prefixlen, gateway, oif) of main-table IPv4 routes."""
        out = []
        for _, p in self.request(RTM_GETROUTE, F_DUMP, _RTMSG.pack(AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)):
            fam, dlen, _s, _t, table, _p, _sc, _ty, _f = _RTMSG.unpack_from(p)
            if table != RT_TABLE_MAIN:
                continue
            a = parse_attrs(p, _RTMSG.size)
            out.append((_socket.inet_ntoa(a[RTA_DST]) if RTA_DST in a else "0.0.0.0", dlen,
                        _socket.inet_ntoa(a[RTA_GATEWAY]) if RTA_GATEWAY in a else None,
                        struct.unpack("=I", a[RTA_OIF])[0] if RTA_OIF in a else 0))
        return out
