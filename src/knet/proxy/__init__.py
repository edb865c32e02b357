"""kube-proxy: Services + EndpointSlices -> iptables or nftables rules in a node's network namespace.

Layout (pure logic apart from `netfilter.py`, `conntrack.py` and `server.py`):
  names.py      chain names (upstream's sha256/base32 hashes)
  model.py      ServicePortName, ServicePort, Endpoint; change trackers and maps (deltas)
  topology.py   which endpoints a node uses (traffic policies, terminating fallback)
  options.py    the renderer options and the KubeProxyConfiguration they come from
  iptables.py   render(model) -> iptables-restore text
  nftables.py   render(model) -> nft script
  netfilter.py  Netfilter protocol: the real iptables-restore / nft, and a fake that checks scripts
  proxier.py    the sync loop: partial syncs, periodic full syncs, min sync period, retries
  metrics.py    Prometheus metrics and /healthz
  server.py     the `knet kube-proxy` process: config, informers, proxier, HTTP endpoints
"""
