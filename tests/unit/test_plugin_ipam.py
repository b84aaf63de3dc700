"""The plugin's IPAM and configuration checks, without root: reservations on a temporary data directory,
what a crash at each point of a reservation leaves and that the attachment's release removes it all,
GC's bookkeeping, and the configuration and environment a runtime (or a hostile one) may send.

``CNILAB_PLUGIN_SOURCE=DIR`` (a ``plugin/`` folder) runs them against another copy of the plugin: how each
was seen failing on the code before its fix."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from cnilab.core.suite import plugin_dir

pytestmark = pytest.mark.unit
PLUGIN = os.environ.get("CNILAB_PLUGIN_SOURCE") or str(plugin_dir())
sys.path.insert(0, PLUGIN)
from cnilab_cni import addr, config, errors  # noqa: E402
from cnilab_cni.ipam import Pool  # noqa: E402


def pool(tmp_path, subnet="10.30.0.0/29") -> Pool:
    return Pool({"subnet": subnet, "dataDir": str(tmp_path)}, "net")


def files(tmp_path) -> set[str]:
    return set(os.listdir(tmp_path / "net"))


def test_reserve_release_and_retry_keep_one_address(tmp_path):
    p = pool(tmp_path)
    a = p.reserve("c1", "eth0", "att1")
    assert p.reserve("c1", "eth0", "att1") == a, "a retried ADD keeps its address"
    b = p.reserve("c2", "eth0", "att2")
    assert a != b and p.gateway not in (a, b) and p.holds("c1", "eth0", "att1", a)
    p.release("c1", "eth0", "att1")
    p.release("c1", "eth0", "att1")  # idempotent
    assert not p.holds("c1", "eth0", "att1", a) and p.used() == 1
    assert files(tmp_path) == {"lock", "last_reserved_ip", addr.to_str(b), "att-att2"}


def test_the_pool_runs_out_with_a_clear_code(tmp_path):
    p = pool(tmp_path, "10.30.0.0/30")  # the gateway and one pod
    p.reserve("c1", "eth0", "att1")
    with pytest.raises(errors.CniError) as err:
        p.reserve("c2", "eth0", "att2")
    assert err.value.code == errors.POOL_EXHAUSTED


@pytest.mark.parametrize("point", ["ipam-after-index", "ipam-after-temp", "ipam-after-record"])
def test_a_crash_anywhere_in_a_reservation_is_undone_by_release(tmp_path, point):
    """The crash is real: a child process dies (os._exit) at the point; release then leaves only the lock."""
    code = (f"import sys; sys.path.insert(0, {PLUGIN!r}); from cnilab_cni.ipam import Pool; "
            f"Pool({{'subnet': '10.30.0.0/29', 'dataDir': {str(tmp_path)!r}}}, 'net').reserve('c1', 'eth0', 'att1')")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "CNILAB_CNI_FAULT": point})
    assert done.returncode == 137, "the fault point did not fire"
    assert files(tmp_path) - {"lock", "last_reserved_ip"}, "the crash left nothing to clean (the point is too early)"
    pool(tmp_path).release("c1", "eth0", "att1")
    assert files(tmp_path) <= {"lock", "last_reserved_ip"}, files(tmp_path)


def test_gc_keeps_the_valid_and_removes_every_file_of_the_stale(tmp_path):
    p = pool(tmp_path)
    keep, gone = p.reserve("c1", "eth0", "att1"), p.reserve("c2", "eth0", "att2")
    os.close(p.attachment_lock("att2"))  # a lock file left by a crashed call of the stale attachment
    assert p.attachments() == {"att1", "att2"}
    p.keep_only({("c1", "eth0"): "att1"})
    assert p.holds("c1", "eth0", "att1", keep) and not p.holds("c2", "eth0", "att2", gone)
    assert files(tmp_path) == {"lock", "last_reserved_ip", addr.to_str(keep), "att-att1"}


def test_an_unusable_data_directory_makes_status_unavailable(tmp_path):
    (tmp_path / "net").write_text("a file where the directory should be")
    with pytest.raises(errors.CniError) as err:
        pool(tmp_path).usable()
    assert err.value.code == errors.NOT_AVAILABLE


def conf(**extra) -> bytes:
    base = {"cniVersion": "1.1.0", "name": "net", "type": "cnilab", "ipam": {"subnet": "10.30.0.0/24"}}
    return config.fastjson.dumps({**base, **extra}).encode()


@pytest.mark.parametrize("key", ["ipMasq", "isGateway", "isDefaultGateway"])
def test_a_boolean_given_as_a_string_is_code_7(key):
    with pytest.raises(errors.CniError) as err:
        config.Config(conf(**{key: "false"}))
    assert err.value.code == errors.INVALID_CONFIG and key in err.value.msg


def test_gateway_flags_default_to_false_as_in_the_reference_bridge():
    c = config.Config(conf())
    assert (c.is_gateway, c.default_route, c.ip_masq) == (False, False, False)


def test_json_nested_too_deep_is_code_6():
    with pytest.raises(errors.CniError) as err:
        config.Config(b"[" * 200_000 + b"]" * 200_000)
    assert err.value.code == errors.DECODE_FAILURE


@pytest.mark.parametrize("cid", ["a/b", "..", "g\nx", "-bad", "-bad/../x", "", "é1"])
def test_an_invalid_container_id_is_code_4(monkeypatch, cid):
    monkeypatch.setenv("CNI_CONTAINERID", cid)
    with pytest.raises(errors.CniError) as err:
        config.container_id()
    assert err.value.code == errors.INVALID_ENV


@pytest.mark.parametrize("ifname", ["eth0123456789abc", "eth/0", "eth:0", "..", ".", "eth 0", ""])
def test_an_unusable_ifname_is_code_4(ifname):
    with pytest.raises(errors.CniError) as err:
        config.check_ifname(ifname)
    assert err.value.code == errors.INVALID_ENV


@pytest.mark.parametrize("good", ["eth0", "net1", "a-b_c.d"])
def test_good_names_pass(monkeypatch, good):
    monkeypatch.setenv("CNI_CONTAINERID", good)
    assert config.container_id() == good and config.check_ifname(good) == good


# -- crash safety, measured from outside: a kill before each write the IPAM makes ----------------------

KILLER = """
import os, sys
sys.path.insert(0, {plugin!r})
from cnilab_cni.ipam import Pool
data, kill_at, seen = {data!r}, int(sys.argv[1]), 0

def hook(event, args):
    global seen
    if event == "open":
        writes = isinstance(args[0], str) and args[0].startswith(data) and args[2] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
    else:
        writes = event in ("os.link", "os.rename", "os.remove", "os.mkdir")
    if writes:
        seen += 1
        if seen == kill_at:
            os._exit(137)

sys.addaudithook(hook)
Pool({{"subnet": "10.30.0.0/29", "dataDir": data}}, "net").reserve("c1", "eth0", "att1")
os._exit(0)
"""


def _owned(d, owner: str) -> list[str]:
    return sorted(n for n in os.listdir(d) if n.count(".") == 3 and n[0].isdigit() and (d / n).read_text() == owner)


def test_a_kill_before_any_write_of_a_reservation_is_undone_by_release_and_survived_by_a_retry(tmp_path):
    """SIGKILL-like exits (os._exit from an audit hook) before the 1st, 2nd, ... file-system write of a
    reservation, whatever the implementation's order of writes: a retried reservation (no DEL between)
    neither shares an address with another attachment nor holds two; release leaves nothing but the lock."""
    data = tmp_path / "data"
    script = tmp_path / "killer.py"
    script.write_text(KILLER.format(plugin=PLUGIN, data=str(data)))
    d = data / "net"
    point = 0
    while True:
        point += 1
        shutil.rmtree(data, ignore_errors=True)
        code = subprocess.run([sys.executable, "-B", str(script), str(point)]).returncode
        if code == 0:
            break  # the reservation completed before the point: every write was a kill point
        assert code == 137, f"the reservation killed at write {point} exited {code}"
        p = Pool({"subnet": "10.30.0.0/29", "dataDir": str(data)}, "net")
        other = p.reserve("c2", "eth0", "att2")  # another pod's ADD comes first
        mine = p.reserve("c1", "eth0", "att1")  # the runtime retries the killed ADD
        assert mine != other, f"killed at write {point}: the retry took {addr.to_str(mine)}, given to another pod"
        assert _owned(d, "c1\neth0") == [addr.to_str(mine)], f"killed at write {point}: {sorted(os.listdir(d))}"
        assert _owned(d, "c2\neth0") == [addr.to_str(other)]
        p.release("c1", "eth0", "att1")
        p.release("c2", "eth0", "att2")
        assert set(os.listdir(d)) <= {"lock", "last_reserved_ip"}, f"killed at write {point}, retried, released: {sorted(os.listdir(d))}"
        shutil.rmtree(data)  # and the runtime that deletes first
        subprocess.run([sys.executable, "-B", str(script), str(point)], check=False)
        Pool({"subnet": "10.30.0.0/29", "dataDir": str(data)}, "net").release("c1", "eth0", "att1")
        left = set(os.listdir(d)) if d.is_dir() else set()
        assert left <= {"lock", "last_reserved_ip"}, f"killed at write {point}, then released: {sorted(left)}"
    assert point > 5, "the kill points were never reached"


def test_temporary_files_of_dead_calls_are_removed_by_the_next_reservation(tmp_path):
    """Temporary files are written and consumed under the IPAM lock: one seen by the lock's holder is a dead call's."""
    p = pool(tmp_path)
    p.reserve("c0", "eth0", "att0")
    stale = {"10.30.0.6.tmp.4194301", "att-att9.tmp.att9", "10.30.0.5.tmp.att9", "last_reserved_ip.tmp.77"}
    for name in stale:
        (tmp_path / "net" / name).write_text("10.30.0.5")
    p.reserve("c1", "eth0", "att1")
    assert not stale & files(tmp_path), sorted(files(tmp_path))


def test_an_attachment_lock_removed_by_its_holder_still_admits_one_call_at_a_time(tmp_path, monkeypatch):
    """The holder unlinks ``lock-ID`` as it lets go; a call that waited on the old file and a call that opens
    the new one must not both believe they hold the attachment."""
    import threading

    from cnilab_cni import ipam

    monkeypatch.setattr(ipam, "LOCK_TIMEOUT", 0.5)
    p = pool(tmp_path)
    first = p.attachment_lock("a")
    path = str(tmp_path / "net" / "lock-a")
    got: dict[str, int | None] = {}

    def waiter() -> None:
        try:
            got["waiter"] = p.attachment_lock("a")
        except errors.CniError:
            got["waiter"] = None

    def opened() -> int:
        return sum(1 for fd in os.listdir("/proc/self/fd") if _readlink(f"/proc/self/fd/{fd}") == path)

    t = threading.Thread(target=waiter)
    t.start()
    deadline = time.monotonic() + 5
    while opened() < 2 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert opened() >= 2, "the waiter never opened the lock file"
    p.drop_attachment_lock("a", first)
    try:
        third = p.attachment_lock("a")
    except errors.CniError:
        third = None
    t.join()
    holders = [fd for fd in (got["waiter"], third) if fd is not None]
    for fd in holders:
        os.close(fd)
    assert len(holders) == 1, "two calls of one attachment held its lock at once"


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def test_gc_never_releases_a_record_it_cannot_read_as_one_valid_attachment(tmp_path):
    """Records an older plugin wrote for container IDs it should have refused: GC cannot prove them stale."""
    p = pool(tmp_path)
    live = p.reserve("c1", "eth0", config.attachment_id("c1", "eth0"))
    stale = p.reserve("c2", "eth0", config.attachment_id("c2", "eth0"))
    d = tmp_path / "net"
    (d / "10.30.0.6").write_text("g\nx\neth0")
    (d / "10.30.0.5").write_text("-bad/../x\neth0")
    p.keep_only({("c1", "eth0"): config.attachment_id("c1", "eth0")})
    assert (d / "10.30.0.6").exists() and (d / "10.30.0.5").exists(), sorted(os.listdir(d))
    assert p.holds("c1", "eth0", config.attachment_id("c1", "eth0"), live)
    assert not (d / addr.to_str(stale)).exists(), "the stale attachment's address was kept"


def test_gc_leaves_an_attachment_whose_call_is_still_at_work(tmp_path):
    """An ADD the runtime has not listed yet holds its attachment's lock: GC must not release under it."""
    p = pool(tmp_path)
    att = config.attachment_id("c2", "eth0")
    ip = p.reserve("c2", "eth0", att)
    held = p.attachment_lock(att)
    p.keep_only({})
    assert p.holds("c2", "eth0", att, ip), "GC released the address of an ADD at work"
    p.drop_attachment_lock(att, held)
    p.keep_only({})
    assert not p.holds("c2", "eth0", att, ip) and files(tmp_path) <= {"lock", "last_reserved_ip"}, files(tmp_path)
