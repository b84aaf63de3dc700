"""Known deviations of widely used plugins, in one place: each names the case it breaks and how.

A listed deviation is reported as "known deviation" instead of "fail", so a reference plugin's run stays
readable (the report shows the spec sentence the case cites); a deviation that no longer occurs is a
plain pass. Rows: the plugin family (``Target.family``), the plugin type ("*": every plugin of the
family), the case (``id`` or ``id[variant]``), what the plugin does instead, and -- where a case can
fail in more than one way -- the words the failure must contain to be this deviation (after a second
``|``), so that no other failure of the case hides behind it.
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
containernetworking-plugins | * | fault.killed-add | DEL after an ADD killed before its ipMasq rule existed fails on deleting that rule (iptables -D: no such rule) | iptables -t nat -D
"""

def _rows() -> dict[tuple[str, str, str], tuple[str, str]]:
    rows = {}
    for line in _TABLE.strip().splitlines():
        family, plugin, case, rest = (part.strip() for part in line.split("|", 3))
        why, _, when = (part.strip() for part in rest.partition(" | "))
        rows[(family, plugin, case)] = (why, when)
    return rows


DEVIATIONS = _rows()


def deviation(family: str, plugin_type: str, case: str, detail: str = "") -> str | None:
    """What the listed deviation says, if this failure (its ``detail``) is that deviation."""
    for key in ((family, plugin_type, case), (family, "*", case)):
        if key in DEVIATIONS:
            why, when = DEVIATIONS[key]
            if when in detail:
                return why
    return None
