"""The plugin's IPAM and configuration checks, without root: reservations on a temporary data directory,
what a crash at each point of a reservation leaves and that the attachment's release removes it all,
GC's bookkeeping, and the configuration and environment a runtime (or a hostile one) may send."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cnilab.core.suite import plugin_dir

pytestmark = pytest.mark.unit
sys.path.insert(0, str(plugin_dir()))
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
    code = (f"import sys; sys.path.insert(0, {str(plugin_dir())!r}); from cnilab_cni.ipam import Pool; "
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
