"""knet.node: the node agent (kubelet) and its pod runtimes.

Pure modules (no I/O): workloads (image -> process), podenv (env, $(VAR), Service links),
dnsconfig (resolv.conf, hosts), status (pod phase/conditions), nodeobject (Node + status),
static (static/mirror pods), config (flags), crictl (table formatting).
Effectful: runtime (pause sandboxes + CNI, or simulated), podworker (one pod's life), probes,
volumes (files under the pod dir, bind mounts), agent (registration, lease, informers, status
writers), server (the kubelet HTTP API: logs, exec), agnhost/ (the e2e test image's subcommands:
netexec, serve-hostname, connect, porter, pause, dns-*).
Contracts: docs/contracts.md sections 4, 6 and 7.
"""
