"""Requirements on errors and on hostile input: what a plugin answers when the runtime (or an attacker
who controls a pod's name) hands it something wrong. Expected: a spec error with the right code, or
success where the spec allows it -- and nothing changed that should not change."""

from __future__ import annotations

import json

from .checks_verbs import warmed
from .session import Call, Session, result_ip
from .spec import Level, Violation, applies, expect, requirement

MUST, SHOULD = Level.MUST, Level.SHOULD

#: well-known error codes (SPEC "Well-known Error Codes")
INCOMPATIBLE, INVALID_ENV, DECODE, INVALID_CONFIG = 1, 4, 6, 7


def deep_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _bad_input(s: Session, case: str) -> tuple[bytes | dict, dict[str, str]]:
    """The stdin and environment of one malformed ADD."""
    att = s.attachment(s.pod())
    env, conf = s.env(att, "ADD"), s.own_conf()
    if case == "missing-env":
        del env["CNI_CONTAINERID"]
    elif case == "undecodable":
        return b"{this is not json", env
    elif case == "deep-json":
        return deep_json(100_000), env
    elif case == "invalid-config":
        conf = json.loads(json.dumps(conf))
        if isinstance(conf.get("ipam"), dict) and "subnet" in conf["ipam"]:
            conf["ipam"]["subnet"] = "10.22.0.0/99"
        else:
            conf["mtu"] = "not a number"
    return conf, env


ERROR_CASES = {"missing-env": INVALID_ENV, "undecodable": DECODE, "deep-json": DECODE, "invalid-config": INVALID_CONFIG}


def _error_call(s: Session, case: str) -> Call:
    stdin, env = _bad_input(s, case)
    call = s.raw("ADD", stdin, env=env)
    expect(call.returncode != 0, f"ADD with {case.replace('-', ' ')} succeeded")
    expect(call.returncode > 0, f"the plugin died of signal {-call.returncode} on {case.replace('-', ' ')}")
    return call


@requirement("error.format", "an error is a non-zero exit with {code, msg} as JSON on stdout", MUST, "2 Execution protocol / Errors",
             "Errors must be indicated by a non-zero return code and the following JSON being printed to stdout",
             variants=tuple(ERROR_CASES))
def error_format(s: Session, case: str) -> None:
    call = _error_call(s, case)
    err = call.answer
    expect(isinstance(err, dict) and isinstance(err.get("code"), int) and isinstance(err.get("msg"), str) and err["msg"],
           f"the error is not {{code, msg}} JSON: {call.describe()}")


@requirement("error.cniversion", "an error names its cniVersion", MUST, "2 Execution protocol / Errors",
             "cniVersion specifies a Semantic Version 2.0 of CNI specification used by the plugin",
             variants=("missing-env", "invalid-config"))
def error_cniversion(s: Session, case: str) -> None:
    err = _error_call(s, case).answer
    expect(isinstance(err, dict) and isinstance(err.get("cniVersion"), str) and err["cniVersion"],
           f"the error has no cniVersion: {err}")


@requirement("error.code", "errors carry the well-known code of their cause", SHOULD, "2 Execution protocol / Well-known error codes",
             "4 Invalid necessary environment variables; 6 Failed to decode content; 7 Invalid network config",
             variants=tuple(ERROR_CASES))
def error_code(s: Session, case: str) -> None:
    _expect_code(_error_call(s, case), ERROR_CASES[case], case.replace("-", " "))


# -- names a runtime (or a pod's author) controls ------------------------------------------------

CONTAINER_IDS = {"slash": "a/b", "dotdot": "..", "newline": "g\nx", "leading-dash": "-bad", "traversal": "-bad/../x"}


@requirement("input.container-id", "an invalid container ID is refused (code 4) and changes nothing", SHOULD,
             "2 Execution protocol / Parameters",
             "CNI_CONTAINERID ... Must start with an alphanumeric character, optionally followed by alphanumerics, "
             "underscore, dot or hyphen", variants=tuple(CONTAINER_IDS))
def input_container_id(s: Session, case: str) -> None:
    call = _refused_add(s, "container ID", CONTAINER_IDS[case], "eth0")
    _expect_code(call, INVALID_ENV, f"container ID {CONTAINER_IDS[case]!r}")


IFNAMES = {"16-bytes": "eth0123456789abc", "slash": "eth/0", "colon": "eth:0", "dotdot": "..", "space": "eth 0"}


def _refused_add(s: Session, what: str, container_id: str | None, ifname: str) -> Call:
    """An ADD with a bad name must fail and leave the node and the pod as they were."""
    baseline = warmed(s)
    pod = s.pod()
    att = s.attachment(pod, ifname, container_id)
    call = s.raw("ADD", s.own_conf(), att)
    if call.returncode == 0:
        s.raw("DEL", s.own_conf(), att)
        raise Violation(f"ADD accepted the {what} {container_id if what == 'container ID' else ifname!r}")
    s.settle()
    expect(s.state() == baseline, f"the failed ADD changed the node: {baseline.diff(s.state())}")
    expect(pod.links() == ["lo"], f"the failed ADD left links in the pod: {pod.links()}")
    return call


def _expect_code(call: Call, code: int, what: str) -> None:
    got = call.answer.get("code") if isinstance(call.answer, dict) else None
    expect(got == code, f"{what}: expected code {code}, got {call.describe()}")


@requirement("input.ifname", "an unusable CNI_IFNAME is an error that changes nothing", MUST, "2 Execution protocol / Parameters",
             "CNI_IFNAME ... if the plugin is unable to use this interface name it must return an error",
             variants=tuple(IFNAMES))
def input_ifname(s: Session, case: str) -> None:
    _refused_add(s, "interface name", None, IFNAMES[case])


@requirement("input.ifname-code", "an unusable CNI_IFNAME gets code 4", SHOULD, "2 Execution protocol / Well-known error codes",
             "4 - Invalid necessary environment variables, like CNI_COMMAND, CNI_CONTAINERID, etc.",
             variants=tuple(IFNAMES))
def input_ifname_code(s: Session, case: str) -> None:
    _expect_code(_refused_add(s, "interface name", None, IFNAMES[case]), INVALID_ENV, f"ifname {IFNAMES[case]!r}")


@requirement("input.huge-stdin", "10 MB of configuration gets an answer, not a crash", MUST, "2 Execution protocol / Errors",
             "Errors must be indicated by a non-zero return code and the following JSON being printed to stdout")
def input_huge_stdin(s: Session) -> None:
    pod = s.pod()
    att = s.attachment(pod)
    conf = {**s.own_conf(), "args": {"padding": "x" * 10_000_000}}
    call = s.raw("ADD", conf, att)
    if call.returncode == 0:
        expect(isinstance(call.answer, dict) and call.answer.get("ips"), f"ADD succeeded without a result: {call.describe()}")
        s.raw("DEL", conf, att)
        return
    expect(call.returncode > 0, f"the plugin died of signal {-call.returncode}")
    expect(isinstance(call.answer, dict) and "code" in call.answer, f"no JSON error: {call.describe()}")


@requirement("input.string-boolean", '"ipMasq": "false" (a string) is refused or means false', SHOULD,
             "1 Network configuration / ipMasq", "ipMasq (boolean, optional)")
def input_string_boolean(s: Session) -> None:
    applies("ipMasq" in s.target.own(s.conflist()), "the configuration has no ipMasq key")
    baseline = warmed(s)
    pod = s.pod()
    att = s.attachment(pod)
    conf = {**s.own_conf(), "ipMasq": "false"}
    call = s.raw("ADD", conf, att)
    if call.returncode != 0:
        _expect_code(call, INVALID_CONFIG, '"ipMasq": "false" refused')
        return
    ip = result_ip(call.answer)
    masq = [r for r in s.node.iptables_rules("nat") if ip in r and r not in baseline.rules]
    expect(not masq, f'"ipMasq": "false" installed NAT rules for the pod: {masq}')
