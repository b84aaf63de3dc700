"""ipMasq: one MASQUERADE rule per attachment, tagged so DEL and GC find exactly it.

iptables is run with ``os.posix_spawnp`` rather than ``subprocess`` (13 ms to import).
"""

import os

from .errors import IO_FAILURE, CniError

TAG_PREFIX = "cnilab:"


def tag(network: str, attachment: str) -> str:
    return f"{TAG_PREFIX}{network}:{attachment}"


def _iptables(*args: str) -> str:
    r, w = os.pipe()
    actions = [(os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, w, 2), (os.POSIX_SPAWN_CLOSE, r)]
    try:
        pid = os.posix_spawnp("iptables", ["iptables", "-w", "-t", "nat", *args], os.environ, file_actions=actions)
    except FileNotFoundError:
        raise CniError(IO_FAILURE, "iptables is not installed but ipMasq needs it", "apt-get install -y iptables") from None
    finally:
        os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    out = b"".join(chunks).decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise CniError(IO_FAILURE, f"iptables {' '.join(args)} failed", out.strip())
    return out


def masquerade(ip: str, subnet: str, network: str, attachment: str) -> None:
    _iptables("-A", "POSTROUTING", "-s", f"{ip}/32", "!", "-d", subnet, "-j", "MASQUERADE",
              "-m", "comment", "--comment", tag(network, attachment))


def _tagged(network: str) -> list[tuple[str, list[str]]]:
    """(attachment id, rule words) of this network's rules."""
    found = []
    for line in _iptables("-S", "POSTROUTING").splitlines():
        words = [w.strip("\"") for w in line.split()]  # our tags have no spaces; -S quotes them
        if "--comment" not in words:
            continue
        comment = words[words.index("--comment") + 1]
        if comment.startswith(tag(network, "")):
            found.append((comment[len(tag(network, "")):], words))
    return found


def attachments(network: str) -> set[str]:
    """The attachments of ``network`` that have their rule (CHECK)."""
    return {att for att, _ in _tagged(network)}


def remove(network: str, keep: set[str] | None = None, only: str | set[str] | None = None) -> int:
    """Delete this network's rules: those of attachment(s) ``only``, or all but ``keep``."""
    only = {only} if isinstance(only, str) else only
    removed = 0
    for attachment, words in _tagged(network):
        if (only is not None and attachment not in only) or (keep is not None and attachment in keep):
            continue
        _iptables("-D", *words[1:])
        removed += 1
    return removed
