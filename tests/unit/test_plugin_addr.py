"""The plugin's IPv4 arithmetic (it avoids the ipaddress module's import cost) against ipaddress itself."""

import ipaddress
import sys

import pytest

from cnilab.core.suite import plugin_dir

pytestmark = pytest.mark.unit
sys.path.insert(0, str(plugin_dir()))
from cnilab_cni import addr, errors  # noqa: E402


@pytest.mark.parametrize("ip", ["0.0.0.0", "10.22.0.1", "192.0.2.255", "255.255.255.255"])
def test_to_int_and_back_agree_with_ipaddress(ip):
    assert addr.to_int(ip) == int(ipaddress.IPv4Address(ip)) and addr.to_str(addr.to_int(ip)) == ip


@pytest.mark.parametrize("cidr", ["10.22.0.0/16", "10.22.1.0/24", "0.0.0.0/0", "10.22.0.4/30", "192.0.2.7/32"])
def test_parse_cidr_agrees_with_ipaddress(cidr):
    net = ipaddress.IPv4Network(cidr)
    assert addr.parse_cidr(cidr) == (int(net.network_address), net.prefixlen)


@pytest.mark.parametrize("bad", ["10.22.0.1/16", "10.22.0.0/33", "10.22.0.0", "10.22.0/16", "x/8", "10.22.0.0/-1", ""])
def test_bad_subnets_are_invalid_config(bad):
    with pytest.raises(errors.CniError) as err:
        addr.parse_cidr(bad)
    assert err.value.code == errors.INVALID_CONFIG


@pytest.mark.parametrize("bad", ["10.22.0", "1.2.3.4.5", "256.1.1.1", "a.b.c.d", ""])
def test_bad_addresses_are_invalid_config(bad):
    with pytest.raises(errors.CniError) as err:
        addr.to_int(bad)
    assert err.value.code == errors.INVALID_CONFIG
