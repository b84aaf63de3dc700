"""Known deviations of widely used plugins, in one place: each names the case it breaks and how.

A listed deviation is reported as "known deviation" instead of "fail", so a reference plugin's run stays
readable (the report shows the spec sentence the case cites); a deviation that no longer occurs is a
plain pass. Rows: the plugin family (``Target.family``), the plugin type ("*": every plugin of the
family), the case (``id`` or ``id[variant]``), and what the plugin does instead.
"""

from __future__ import annotations

_TABLE = """
containernetworking-plugins | * | error.code[invalid-config] | an invalid subnet is reported as a generic error (code 999), not 7 "Invalid network config"
containernetworking-plugins | * | error.cniversion[missing-env] | errors raised before the configuration is read carry no cniVersion
containernetworking-plugins | * | error.cniversion[invalid-config] | errors of the IPAM delegate are passed on without cniVersion
containernetworking-plugins | * | del.missing[netns-empty] | finds its interfaces only through CNI_NETNS: with it empty the host end stays until the namespace dies
containernetworking-plugins | * | del.missing[netns-unset] | finds its interfaces only through CNI_NETNS: without it the host end and the ipMasq rules stay
containernetworking-plugins | * | del.missing[netns-gone] | stops at a missing namespace before removing its ipMasq rules: they stay on the node
containernetworking-plugins | * | check.detects[nat-rule-removed] | CHECK does not look at the ipMasq rules (SPEC: CHECK should report missing firewall rules)
containernetworking-plugins | * | input.string-boolean | a string where a boolean belongs is refused as a generic error (code 999), not 7
containernetworking-plugins | * | fault.killed-add[ipam-lock-held] | the IPAM delegate (host-local, a child process) outlives the killed plugin and goes on with its reservation
containernetworking-plugins | ptp | fault.killed-add | DEL after an ADD killed before its ipMasq rule existed fails on deleting that rule (iptables -D: no such rule)
"""

DEVIATIONS: dict[tuple[str, str, str], str] = {
    (family, plugin, case): why
    for family, plugin, case, why in (tuple(part.strip() for part in row.split("|", 3))
                                      for row in _TABLE.strip().splitlines())
}


def deviation(family: str, plugin_type: str, case: str) -> str | None:
    return DEVIATIONS.get((family, plugin_type, case)) or DEVIATIONS.get((family, "*", case))
