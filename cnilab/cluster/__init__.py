"""The cluster network of stage 08: the store (etcd), the node agent, and its leases."""
