"""knet.net: the Linux side of a cluster's network.

names (pure): every name and address a cluster uses on the host, with its prefix so teardown
finds it again. machines: node machines (netns + UTS/PID/mount namespaces held by node_init.py,
a veth into the cluster's host bridge) and their teardown. cni: the pod network by invoking the
real CNI plugins. linux/node_init: stdlib-only helpers for the processes that hold namespaces.
Contract: docs/contracts.md section 7.
"""
