"""cnilab's IPAM, in the style of the reference host-local plugin.

State lives in ``dataDir/<network>/``: one file per allocated address, named by
the address and holding ``containerID`` and ``ifname`` (host-local's layout), an
index file ``att-<attachment id>`` naming the address of each attachment (so ADD
and DEL never read every record: their cost does not grow with the pod count),
and ``last_reserved_ip``.
A reservation is made atomically and crash-safely, and DEL can always find it:
the index ``att-<id>`` is written first (naming the address about to be taken),
then the record is written to a temporary file named by the attachment and
hard-linked to the address's name (``link`` fails if the address is taken). A
crash at any point leaves what the attachment's DEL knows how to remove: the
index, perhaps the record, perhaps the temporary file (``*.tmp.<id>``). An index
alone (a crash before the record) proves nothing: the address it names may have
gone to another attachment since, so only a record that names the attachment is
its reservation. Temporary files are written and consumed under the lock, so one
that the lock's holder sees belongs to a dead call: the next reservation removes it.
An flock on ``lock`` serialises allocators; waiting longer than the timeout is
"try again later" (code 11). ``lock-<id>`` serialises the calls of one
attachment (an ADD a runtime gave up on, and the DEL that follows it); its holder
removes it as it lets go, so a lock is held only once it is still the file of
that name (else the waiter locks the new one).
"""

import fcntl
import os
import time

from . import addr
from .errors import INVALID_CONFIG, IO_FAILURE, NOT_AVAILABLE, POOL_EXHAUSTED, TRY_AGAIN_LATER, CniError, fault

LOCK_TIMEOUT = 10.0


class Pool:
    def __init__(self, ipam: dict, network: str):
        if not isinstance(ipam, dict) or "subnet" not in ipam:
            raise CniError(INVALID_CONFIG, "ipam.subnet is missing", 'add "ipam": {"type": "cnilab", "subnet": "10.22.0.0/16"}')
        self.net, self.plen = addr.parse_cidr(ipam["subnet"])
        if self.plen > 30:
            raise CniError(INVALID_CONFIG, f"subnet {ipam['subnet']} is too small", "a pod subnet needs room for a gateway and pods: /30 or larger")
        size = 1 << (32 - self.plen)
        first, last = self.net + 1, self.net + size - 2
        self.gateway = addr.to_int(ipam["gateway"]) if ipam.get("gateway") else first
        self.start = addr.to_int(ipam["rangeStart"]) if ipam.get("rangeStart") else first
        self.end = addr.to_int(ipam["rangeEnd"]) if ipam.get("rangeEnd") else last
        for name, value in (("gateway", self.gateway), ("rangeStart", self.start), ("rangeEnd", self.end)):
            if not first <= value <= last:
                raise CniError(INVALID_CONFIG, f"ipam.{name} {addr.to_str(value)} is outside subnet {ipam['subnet']}")
        if self.start > self.end:
            raise CniError(INVALID_CONFIG, "ipam.rangeStart is after ipam.rangeEnd")
        self.dir = os.path.join(ipam.get("dataDir") or "/var/lib/cni/cnilab", network)

    @property
    def capacity(self) -> int:
        return self.end - self.start + 1 - (self.start <= self.gateway <= self.end)

    # -- state on disk ------------------------------------------------------------
    def _lock(self, name: str = "lock") -> int:
        path = os.path.join(self.dir, name)
        try:
            os.makedirs(self.dir, exist_ok=True)
        except OSError as exc:
            raise CniError(IO_FAILURE, f"cannot use the IPAM data directory {self.dir}: {exc.strerror}") from None
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise CniError(IO_FAILURE, f"cannot use the IPAM data directory {self.dir}: {exc.strerror}") from None
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        os.close(fd)
                        raise CniError(TRY_AGAIN_LATER, f"the IPAM lock {path} is busy", "another call holds it; retry") from None
                    time.sleep(0.001)
            try:
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)  # its last holder removed the file as it let go: lock the one in its place

    def _records(self):
        """(name, content) of each address record."""
        for name in os.listdir(self.dir):
            if name[0].isdigit() and name.count(".") == 3:
                try:
                    with open(os.path.join(self.dir, name)) as f:
                        yield name, f.read()
                except FileNotFoundError:
                    continue

    def _owner(self, ip: int) -> str | None:
        try:
            with open(os.path.join(self.dir, addr.to_str(ip))) as f:
                return f.read()
        except FileNotFoundError:
            return None

    def _write_atomic(self, path: str, data: str, *, exclusive: bool, attachment: str) -> bool:
        """Write ``data`` to a temporary file, then link (exclusive) or rename it into place.

        Records are fsynced before they appear; the last-reserved hint is not (losing it costs nothing).
        The temporary file is named by the attachment, so its DEL knows what a crash here left.
        """
        tmp = f"{path}.tmp.{attachment}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data.encode())
            if exclusive:
                os.fsync(fd)
        finally:
            os.close(fd)
        if exclusive:
            fault("ipam-after-temp")
        try:
            if exclusive:
                os.link(tmp, path)  # fails if the address is already taken
            else:
                os.replace(tmp, path)
                return True
        except FileExistsError:
            return False
        finally:
            if exclusive:
                os.unlink(tmp)
        return True

    # -- operations ---------------------------------------------------------------
    def _index(self, attachment: str) -> str:
        return os.path.join(self.dir, f"att-{attachment}")

    def _indexed(self, attachment: str) -> int | None:
        try:
            with open(self._index(attachment)) as f:
                return addr.to_int(f.read().strip())
        except (FileNotFoundError, CniError):
            return None

    def reserve(self, cid: str, ifname: str, attachment: str) -> int:
        fd = self._lock()
        try:
            mine = self._indexed(attachment)
            if mine is not None and self._owner(mine) == f"{cid}\n{ifname}":
                return mine  # a retried ADD of the same attachment keeps its address
            names = os.listdir(self.dir)
            taken = {n for n in names if n[0].isdigit() and n.count(".") == 3}
            if ".tmp." in "/".join(names):  # written and consumed under this lock: their writers died
                for n in [n for n in names if ".tmp." in n]:
                    _unlink(os.path.join(self.dir, n))
            try:
                with open(os.path.join(self.dir, "last_reserved_ip")) as f:
                    last = addr.to_int(f.read().strip())
            except (FileNotFoundError, CniError):
                last = self.end
            span = self.end - self.start + 1
            for step in range(1, span + 1):
                ip = self.start + (last - self.start + step) % span
                name = addr.to_str(ip)
                if ip == self.gateway or name in taken:
                    continue
                self._write_atomic(self._index(attachment), name, exclusive=False, attachment=attachment)
                fault("ipam-after-index")
                if self._write_atomic(os.path.join(self.dir, name), f"{cid}\n{ifname}", exclusive=True, attachment=attachment):
                    fault("ipam-after-record")
                    self._write_atomic(os.path.join(self.dir, "last_reserved_ip"), name, exclusive=False, attachment=attachment)
                    return ip
            raise CniError(POOL_EXHAUSTED, f"no free address left in {addr.to_str(self.net)}/{self.plen}",
                           f"all {self.capacity} addresses are allocated; release pods or widen the range")
        finally:
            os.close(fd)

    def release(self, cid: str, ifname: str, attachment: str) -> None:
        """Free the attachment's address (nothing to do when it holds none: DEL is idempotent)."""
        if not os.path.isdir(self.dir):
            return
        fd = self._lock()
        try:
            ip = self._indexed(attachment)
            leftovers = [self._index(attachment), os.path.join(self.dir, "last_reserved_ip")]
            if ip is not None:
                path = os.path.join(self.dir, addr.to_str(ip))
                leftovers.append(path)
                try:
                    with open(path) as f:
                        owner = f.read()
                    if owner == f"{cid}\n{ifname}":
                        os.unlink(path)
                except FileNotFoundError:
                    pass
            for path in leftovers:  # what a crashed write of this attachment left: its temporary files
                _unlink(f"{path}.tmp.{attachment}")
            _unlink(self._index(attachment))
        finally:
            os.close(fd)

    def keep_only(self, valid: dict[tuple[str, str], str], then=None, others: set[str] = frozenset()) -> set[str]:
        """GC: release every reservation (and every file) of the attachments not in ``valid``
        ({(cid, ifname): attachment id}); return their ids. ``others``: more attachment ids the caller
        knows of (its NAT rules), stale too unless valid or at work. ``then(ids)`` runs before any file
        goes, while the stale attachments are locked: GC deletes their host ends and rules there, so no
        ADD of one begins under it, and a GC that dies half-way leaves files the next GC finds again.

        Left alone, as nothing proves them stale: a record that names no attachment this plugin could have
        made (an older plugin's, for a container ID it should have refused), and an attachment whose ADD or
        DEL holds its lock (at work: an ADD the runtime has not listed yet)."""
        if not os.path.isdir(self.dir):
            return set()
        from .config import attachment_id, attachment_ok

        fd = self._lock()
        held: dict[str, int | None] = {}  # the stale attachments, each with its lock (None: it had no lock file)
        busy: set[str] = set()

        def free(att: str) -> bool:
            if att in held or att in busy:
                return att in held
            try:
                lock = os.open(os.path.join(self.dir, f"lock-{att}"), os.O_RDWR)
            except FileNotFoundError:
                held[att] = None
                return True
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(lock)
                busy.add(att)
                return False
            held[att] = lock
            return True

        try:
            doomed = []
            for name, content in self._records():
                cid, sep, ifname = content.partition("\n")
                if sep and attachment_ok(cid, ifname) and (cid, ifname) not in valid and free(attachment_id(cid, ifname)):
                    doomed.append(name)
            keep = set(valid.values())
            for name in os.listdir(self.dir):
                att = _attachment_of(name)
                if ".tmp." in name or (att is not None and att not in keep and free(att) and not name.startswith("lock-")):
                    doomed.append(name)
            for att in others - keep:
                free(att)
            if then is not None:
                then(set(held))
            for name in doomed:
                _unlink(os.path.join(self.dir, name))
            return set(held)
        finally:
            for att, lock in held.items():
                if lock is not None:
                    _unlink(os.path.join(self.dir, f"lock-{att}"))
                    os.close(lock)
            os.close(fd)

    def used(self) -> int:
        return sum(1 for n in os.listdir(self.dir) if n[0].isdigit() and n.count(".") == 3) if os.path.isdir(self.dir) else 0

    def attachments(self) -> set[str]:
        """The ids of the attachments this network's IPAM knows (an index file each)."""
        return {n[4:] for n in os.listdir(self.dir) if n.startswith("att-") and ".tmp." not in n} if os.path.isdir(self.dir) else set()

    def holds(self, cid: str, ifname: str, attachment: str, ip: int) -> bool:
        """Does the reservation of ``ip`` belong to this attachment (CHECK)?"""
        return self._owner(ip) == f"{cid}\n{ifname}" and self._indexed(attachment) == ip

    def usable(self) -> None:
        """STATUS: ADD can work only where the data directory can be made and written."""
        try:
            os.makedirs(self.dir, exist_ok=True)
            if not os.access(self.dir, os.W_OK | os.X_OK):
                raise PermissionError(13, "not writable")
        except OSError as exc:
            raise CniError(NOT_AVAILABLE, f"the IPAM data directory {self.dir} is unusable: {exc.strerror}",
                           "ADD would fail: fix the directory (a file in its place? a read-only mount?)") from None

    def attachment_lock(self, attachment: str) -> int:
        """Hold while ADD or DEL works on ``attachment``: a DEL never runs beside an ADD of the same
        attachment that its runtime gave up on (it waits until that ADD is dead)."""
        return self._lock(f"lock-{attachment}")

    def drop_attachment_lock(self, attachment: str, fd: int) -> None:
        _unlink(os.path.join(self.dir, f"lock-{attachment}"))
        os.close(fd)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _attachment_of(name: str) -> str | None:
    """The attachment id a file of the data directory belongs to (``att-ID``, ``lock-ID``, ``*.tmp.ID``)."""
    for prefix in ("att-", "lock-"):
        if name.startswith(prefix):
            return name[len(prefix):].partition(".tmp.")[0]
    return name.rpartition(".tmp.")[2] if ".tmp." in name else None
