"""Stage 08 proofs of the agent: nodes joining and dying, a restart under traffic, the store away, hostile store data."""

import json
import threading
import time

from cnilab.cluster.leases import Lease, prefix
from cnilab.core.wait import wait_for
from cnilab.observe.events import RouteChanges
from cnilab.observe.probes import assert_ping, ping
from cnilab.teach.recipe import stage_module

stage = stage_module(__file__)


def cluster_name(lab) -> str:
    return lab.prefix.rstrip("-")


def lease_of(store, lab, node_name) -> str | None:
    return next((k for k, value in stage.stored_leases(store, lab).items() if json.loads(value).get("node") == node_name), None)


def everywhere(nodes, subnet) -> bool:
    return all(subnet in node.peer_entries() for node in nodes)


def nowhere(nodes, subnet) -> bool:
    return not any(subnet in node.peer_entries() for node in nodes)


def test_a_joining_node_is_on_every_peer_within_one_second(lab, underlay, store, cluster):
    newcomer = stage.add_node(lab, underlay, store, 4)
    wait_for(lambda: lease_of(store, lab, "node4") is not None, timeout=15, what="node4's lease in etcd", poll=0.005)
    leased = time.monotonic()
    subnet = newcomer.agent.wait_said("leased ").split("leased ")[1].split()[0]
    wait_for(lambda: everywhere(cluster, subnet), timeout=5, what=f"route, ARP and FDB entries for {subnet} on every node", poll=0.005)
    took = time.monotonic() - leased
    assert took <= 1.0, f"the peers had node4's entries {took:.2f} s after its lease appeared; the goal is 1 s"
    for node in cluster:
        entry = node.peer_entries()[subnet]
        assert entry == Lease(subnet, newcomer.ip, newcomer.vtep.state().mac), \
            f"{node.name}'s entries for node4 are {entry}, not route via {subnet.split('/')[0]}, ARP and FDB to its VTEP {newcomer.ip}"


def test_a_dead_node_leaves_every_peer_within_ttl_plus_one_second(cluster):
    dying, rest = cluster[2], cluster[:2]
    subnet = dying.subnet
    assert everywhere(rest, subnet), f"before the test, {subnet} is missing on a peer: {[n.peer_entries() for n in rest]}"
    died = dying.agent.kill()
    budget = stage.LEASE_TTL + 1
    wait_for(lambda: nowhere(rest, subnet), timeout=budget + 5, what=f"{subnet}'s entries to go", poll=0.01)
    took = time.monotonic() - died
    assert took <= budget, f"node3's entries outlived its agent by {took:.2f} s; the lease TTL is {stage.LEASE_TTL} s, the goal TTL + 1 s"
    for node in rest:
        assert node.agent.said(f"{subnet} is gone"), f"{node.name}'s agent did not say it removed {subnet}"
        left = stage.leftovers(node, dying)
        assert not left, f"on {node.name}, {' and '.join(left)} remain after node3's lease went: forget_peer must remove all three entries"


def test_an_agent_restart_loses_at_most_one_packet_and_flaps_no_route(cluster, pods):
    src, dst = pods["n1p1"], pods["n3p1"]
    before = [node.peer_entries() for node in cluster]
    result = {}
    pinging = threading.Thread(target=lambda: result.update(p=ping(src.ns, dst.ip, count=100, interval=0.05, wait=1)))
    with RouteChanges(cluster[0].ns) as seen1, RouteChanges(cluster[2].ns) as seen3:
        pinging.start()
        for node in (cluster[2], cluster[0]):
            since = len(node.agent.lines())
            node.agent.restart()
            node.agent.wait_said("kept its lease", since=since)
        pinging.join()
    lost = result["p"].sent - result["p"].received
    assert lost <= 1, f"{lost} of {result['p'].sent} packets were lost while the agents of node3 and node1 restarted"
    assert seen1.changes == [] and seen3.changes == [], \
        f"routes changed while the agents restarted (node1: {seen1.changes}, node3: {seen3.changes}): a restart must change nothing that is right"
    assert [node.peer_entries() for node in cluster] == before, "the peer entries differ after the restart"


def test_with_the_store_away_the_datapath_works_and_the_agents_say_so(lab, underlay, store, cluster, pods):
    marks = [len(node.agent.lines()) for node in cluster]
    store.stop()
    for node, mark in zip(cluster, marks):
        node.agent.wait_said("does not answer.*keeping the datapath", timeout=stage.LEASE_TTL + 5, since=mark)
    assert_ping(pods["n1p1"].ns, pods["n3p2"].ip, count=3)
    store.start()
    for node, mark in zip(cluster, marks):
        node.agent.wait_said("answers again", timeout=10, since=mark)
    newcomer = stage.add_node(lab, underlay, store, 4)
    stage.converged([*cluster, newcomer])  # the agents are caught up: they see the leases written after


HOSTILE = {  # key suffix -> (value, bound to an etcd lease?, the reason the agent must give)
    "10.244.200.0-24": ("{not json", True, "not JSON"),
    "10.99.5.0-24": ('{"node": "far", "publicIP": "198.18.0.99", "vtepMAC": "02:00:00:00:00:99"}', True, "outside the cluster CIDR"),
    "10.244.201.0-24": ('{"node": "ghost", "publicIP": "198.18.0.77", "vtepMAC": "02:00:00:00:00:77"}', True, "does not answer"),
    "10.244.202.0-24": ('{"node": "forever", "publicIP": "198.18.0.78", "vtepMAC": "02:00:00:00:00:78"}', False, "no TTL"),
    "10.244.203.0-24": ('{"node": "bad-mac", "publicIP": "198.18.0.79", "vtepMAC": "01:00:5e:00:00:01"}', True, "not a unicast MAC"),
    "junk": ('{"node": "x"}', True, "names no subnet"),
}


def test_hostile_store_data_is_ignored_with_one_line_each(lab, store, cluster, pods):
    base = prefix(cluster_name(lab))
    marks = [len(node.agent.lines()) for node in cluster]

    def plant(client):
        held = client.lease(60)
        for suffix, (value, with_ttl, _) in HOSTILE.items():
            client.put(base + suffix, value, lease=held if with_ttl else None)

    store.do(plant)
    for node, mark in zip(cluster, marks):
        for suffix, (_, _, reason) in HOSTILE.items():
            node.agent.wait_said(f"ignored .*{suffix.split('-')[0]}.*{reason}", timeout=5, since=mark)
    # one more change in the store: every agent looks at everything again, and must not say it twice
    store.do(lambda c: c.put(base + "zzz", "x", lease=c.lease(60)))
    for node, mark in zip(cluster, marks):
        node.agent.wait_said("ignored .*zzz", timeout=5, since=mark)
        for suffix, (_, _, reason) in HOSTILE.items():
            said = node.agent.said(f"ignored .*{suffix.split('-')[0]}.*{reason}", since=mark)
            assert len(said) == 1, f"{node.name}'s agent said {len(said)} times that it ignored {suffix}: {said}"
        assert node.agent.proc.poll() is None, f"{node.name}'s agent died of hostile store data: {node.agent.lines()[-3:]}"
        applied = set(node.peer_entries()) - {other.subnet for other in cluster}
        assert not applied, f"{node.name} applied entries from hostile leases: {sorted(applied)}"
    assert_ping(pods["n1p1"].ns, pods["n2p1"].ip, count=2)
