"""agnhost, the Kubernetes e2e test image's multi-tool, as the image's own subcommands behave.

Upstream's test/images/agnhost is one Go binary (cobra) whose subcommands users and the upstream
e2e suites run: `netexec`, `serve-hostname`, `connect`, `porter`, `pause`, `dns-suffix`,
`dns-server-list`, `etc-hosts`, `liveness`, `test-webserver` (others, e.g. webhook or
resource-consumer, are refused as unknown commands). knet has no images, so the kubelet runs these Python twins
(workloads.py maps the container's image + command/args to `python -I -S main.py SUBCOMMAND ...`).
Stdlib only, started without site-packages: a pod's server listens within tens of milliseconds
and costs a few MB. Pure parts (flag parsing, Go formats, request answers) are unit-tested; the
servers are exercised on a real cluster (tests/e2e/test_agnhost_cluster.py).
"""
