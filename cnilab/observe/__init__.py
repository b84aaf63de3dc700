"""Reading a lab: probes (ping, TCP), packet captures, the diagnosis of a failed reach, pictures of the
topology, the stages' packet traces. Built on the core only."""
