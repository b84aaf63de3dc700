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


def ifname_ok(ifname: str) -> bool:
    """SPEC: an interface name is 1-15 bytes, not '.' or '..', without '/', ':' or white space."""
    return (0 < len(ifname.encode()) <= 15 and ifname not in (".", "..")
            and not any(c in "/:" or c.isspace() for c in ifname))


def check_ifname(ifname: str) -> str:
    """An interface name the kernel takes (``ifname_ok``), else code 4."""
    if not ifname_ok(ifname):
        raise CniError(INVALID_ENV, f"CNI_IFNAME {ifname!r} is not a valid interface name",
                       "1 to 15 bytes, not '.' or '..', without '/', ':' or white space")
    return ifname


def attachment_ok(cid: object, ifname: object) -> bool:
    """Could (cid, ifname) be an attachment this plugin made? (It refuses every other pair at ADD.)"""
    return isinstance(cid, str) and isinstance(ifname, str) and _name_chars_ok(cid) and ifname_ok(ifname)


def valid_attachments(conf: Config) -> dict[tuple[str, str], str]:
    """GC's list of attachments still in use, checked before anything is removed.

    SPEC 1.1.0 GC: the runtime gives the set of attachments still valid, and the plugin may remove the
    resources of attachments outside that set. Without the set (or with one GC cannot read) no attachment
    is provably outside it, so GC answers code 7 (invalid network config, naming the key) and removes
    nothing; GC is a verb of 1.1.0, so an older cniVersion is code 1 (incompatible version). libcni sends
    the set also as ``cni.dev/attachments`` (its name in a draft of the spec): taken when the other is absent."""
    if version_tuple(conf.version) < (1, 1, 0):
        raise CniError(INCOMPATIBLE_VERSION, f"GC does not exist in cniVersion {conf.version}", "GC is new in 1.1.0")
    key = "cni.dev/valid-attachments" if "cni.dev/valid-attachments" in conf.raw else "cni.dev/attachments"
    listed = conf.raw.get(key)
    if not isinstance(listed, list):
        raise CniError(INVALID_CONFIG, "GC needs cni.dev/valid-attachments (a list): without it every pod would look stale",
                       "the runtime must list the attachments still in use (an empty list removes all); nothing was removed")
    pairs = set()
    for a in listed:
        if not (isinstance(a, dict) and attachment_ok(a.get("containerID"), a.get("ifname"))):
            raise CniError(INVALID_CONFIG, f"the valid attachment {a!r} has no valid containerID and ifname",
                           "nothing was removed: a containerID starts with a letter or digit, then letters, digits, "
                           "'_', '.', '-'; an ifname has 1-15 bytes, no '/', ':' or white space")
        pairs.add((a["containerID"], a["ifname"]))
    return {pair: attachment_id(*pair) for pair in pairs}


def attachment_id(cid: str, ifname: str) -> str:
    import _sha1  # hashlib costs 4 ms; its sha1 core is builtin

    return _sha1.sha1(f"{cid}/{ifname}".encode()).hexdigest()[:12]


def host_veth(cid: str, ifname: str) -> str:
    """The host end's name, derived from the attachment: DEL finds it even without the netns."""
    return "vc" + attachment_id(cid, ifname)  # 14 bytes: fits IFNAMSIZ
