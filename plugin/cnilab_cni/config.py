"""What a call brings: the network configuration on stdin (SPEC section 1) and the CNI_* environment
(SPEC section 2 "Parameters"), each checked, with one sentence and a fix for what is wrong."""

import os

from . import SUPPORTED_VERSIONS, addr, fastjson
from .errors import DECODE_FAILURE, INCOMPATIBLE_VERSION, INVALID_CONFIG, INVALID_ENV, CniError
from .ipam import Pool

ENV_HELP = {
    "CNI_COMMAND": "one of ADD, DEL, CHECK, VERSION, STATUS, GC",
    "CNI_CONTAINERID": "the container's ID",
    "CNI_NETNS": "the path of the container's network namespace, e.g. /var/run/netns/NAME",
    "CNI_IFNAME": "the interface name to create in the container, e.g. eth0",
}
#: the keys that are booleans, and their defaults (the reference bridge's)
BOOLEANS = {"isGateway": False, "isDefaultGateway": False, "ipMasq": False, "hairpinMode": False}


def version_tuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in str(v).split("."))
    except ValueError:
        return (0,)


def _name_chars_ok(name: str) -> bool:
    """SPEC: an alphanumeric first character, then alphanumerics, '_', '.' or '-' (ASCII)."""
    ok = name[:1].isascii() and name[:1].isalnum()
    return ok and all(c.isascii() and (c.isalnum() or c in "_.-") for c in name)


class Config:
    """The network configuration on stdin, validated (SPEC section 1)."""

    def __init__(self, raw: bytes):
        try:
            conf = fastjson.loads(raw)
        except ValueError as exc:
            raise CniError(DECODE_FAILURE, "the network configuration on stdin is not valid JSON", str(exc)) from None
        if not isinstance(conf, dict):
            raise CniError(DECODE_FAILURE, "the network configuration must be a JSON object")
        self.raw = conf
        self.version = conf.get("cniVersion", "")
        if self.version not in SUPPORTED_VERSIONS:
            raise CniError(INCOMPATIBLE_VERSION, f"cniVersion {self.version!r} is not supported",
                           f"supported: {', '.join(SUPPORTED_VERSIONS)}")
        self.name = conf.get("name") or ""
        if not isinstance(self.name, str) or not _name_chars_ok(self.name):
            raise CniError(INVALID_CONFIG, f"network name {self.name!r} is missing or invalid",
                           "start with a letter or digit; then letters, digits, '_', '.', '-'")
        self.bridge = conf.get("bridge", "cni0")
        if not isinstance(self.bridge, str) or not 0 < len(self.bridge.encode()) <= 15:
            raise CniError(INVALID_CONFIG, f"bridge name {self.bridge!r} must be 1 to 15 bytes (IFNAMSIZ)")
        self.mtu = conf.get("mtu", 1500)
        if not isinstance(self.mtu, int) or isinstance(self.mtu, bool) or not 68 <= self.mtu <= 65535:
            raise CniError(INVALID_CONFIG, f"mtu {self.mtu!r} is out of range", "IPv4 needs 68 to 65535")
        flags = {key: self._boolean(conf, key, default) for key, default in BOOLEANS.items()}
        self.is_gateway, self.default_route, self.ip_masq = flags["isGateway"], flags["isDefaultGateway"], flags["ipMasq"]
        ipam = conf.get("ipam") or {}
        if not isinstance(ipam, dict) or ipam.get("type") not in ("cnilab", None):
            raise CniError(INVALID_CONFIG, f"ipam.type {ipam.get('type') if isinstance(ipam, dict) else ipam!r} is not supported",
                           'cnilab allocates addresses itself: set "ipam": {"type": "cnilab", "subnet": ...}')
        self.pool = Pool(ipam, self.name)
        self.ipam = ipam
        self.subnet = f"{addr.to_str(self.pool.net)}/{self.pool.plen}"
        self.gateway = addr.to_str(self.pool.gateway)

    @staticmethod
    def _boolean(conf: dict, key: str, default: bool) -> bool:
        value = conf.get(key, default)
        if not isinstance(value, bool):  # "false" is a non-empty string: true to Python, a mistake to us
            raise CniError(INVALID_CONFIG, f"{key} must be a JSON boolean (true or false), not {value!r}",
                           f'write "{key}": {str(bool(value)).lower() if value in ("true", "false") else "true"} without quotes')
        return value


def env(name: str, required: bool = True) -> str:
    value = os.environ.get(name, "")
    if required and not value:
        raise CniError(INVALID_ENV, f"{name} is not set", f"the runtime must set {name}: {ENV_HELP.get(name, '')}")
    return value


def container_id() -> str:
    """CNI_CONTAINERID, as the spec allows it: it names files and rules, so '/', '..' or a newline never pass."""
    cid = env("CNI_CONTAINERID")
    if not _name_chars_ok(cid):
        raise CniError(INVALID_ENV, f"CNI_CONTAINERID {cid!r} is not a valid container ID",
                       "start with a letter or digit, then only letters, digits, '_', '.', '-'")
    return cid


def check_ifname(ifname: str) -> str:
    """An interface name the kernel takes: 1-15 bytes, not '.' or '..', no '/', ':' or white space."""
    bad = (not 0 < len(ifname.encode()) <= 15 or ifname in (".", "..")
           or any(c in "/:" or c.isspace() for c in ifname))
    if bad:
        raise CniError(INVALID_ENV, f"CNI_IFNAME {ifname!r} is not a valid interface name",
                       "1 to 15 bytes, not '.' or '..', without '/', ':' or white space")
    return ifname


def attachment_id(cid: str, ifname: str) -> str:
    import _sha1  # hashlib costs 4 ms; its sha1 core is builtin

    return _sha1.sha1(f"{cid}/{ifname}".encode()).hexdigest()[:12]


def host_veth(cid: str, ifname: str) -> str:
    """The host end's name, derived from the attachment: DEL finds it even without the netns."""
    return "vc" + attachment_id(cid, ifname)  # 14 bytes: fits IFNAMSIZ
