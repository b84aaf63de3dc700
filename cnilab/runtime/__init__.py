"""Running things in a lab: nodes as Docker containers, a CNI runtime and the plugin's daemon, a private
containerd over CRI, and the cleanup of what any run left. Built on the core only."""
