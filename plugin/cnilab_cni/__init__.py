"""cnilab's CNI plugin: stages 02-05 of the lab as one program a container runtime calls.

Standard library only, and started as ``python3 -I -S``: a runtime runs the plugin
once per verb and pod, so start-up is the cost that matters. pyroute2 (the lab's
netlink library) takes ~250 ms to import; the few rtnetlink messages the plugin
needs are therefore encoded by hand in ``netlink.py``.
"""

SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
