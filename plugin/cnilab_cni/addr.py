"""IPv4 arithmetic on integers (the ``ipaddress`` module costs ~6 ms to import)."""

import _socket

from .errors import INVALID_CONFIG, CniError


def to_int(ip: str) -> int:
    try:
        return int.from_bytes(_socket.inet_aton(ip), "big") if ip.count(".") == 3 else _bad(ip)
    except OSError:
        return _bad(ip)


def _bad(ip: str) -> int:
    raise CniError(INVALID_CONFIG, f"{ip!r} is not an IPv4 address", "write it like 10.22.0.1")


def to_str(value: int) -> str:
    return _socket.inet_ntoa(value.to_bytes(4, "big"))


def parse_cidr(cidr: str) -> tuple[int, int]:
    """(network as int, prefix length) of ``a.b.c.d/n``; the host bits must be zero."""
    ip, sep, plen = str(cidr).partition("/")
    if not sep or not plen.isdigit() or not 0 <= int(plen) <= 32:
        raise CniError(INVALID_CONFIG, f"subnet {cidr!r} is not IPv4 CIDR", "write it like 10.22.0.0/16")
    net, n = to_int(ip), int(plen)
    mask = (0xFFFFFFFF << (32 - n)) & 0xFFFFFFFF
    if net & ~mask & 0xFFFFFFFF:
        raise CniError(INVALID_CONFIG, f"subnet {cidr!r} has host bits set", f"did you mean {to_str(net & mask)}/{n}?")
    return net, n
