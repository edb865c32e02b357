"""Cluster DNS: a CoreDNS-compatible server for `*.cluster.local` (issue 7).

Layout, after CoreDNS's plugin/kubernetes:
- `corefile`  parses the Corefile into a `DnsConfig` (what is honoured, what is ignored);
- `objects`   strips Services, EndpointSlices, Namespaces and Pods at ingest;
- `cache`     holds the stripped objects and their indexes (the `dnsController` of CoreDNS);
- `request`   parses a query name into a `RecordRequest`;
- `lookup`    reads the cache for a `RecordRequest` (pure);
- `answer`    turns a question into a `Reply` for the kubernetes zones (pure, one place);
- `handler`   a whole query: validation, zones, forwarding, EDNS0, truncation, the wire cache;
- `wire`      the plain-query parser and the response renderer; `wirecache` precomputed answers;
- `forward`   the upstream resolvers; `metrics` CoreDNS's Prometheus counters; `build` wiring;
- `server`, `http`, `sync`, `localaddrs`, `app`: the side effects (sockets, HTTP endpoints,
  informers, interface addresses, reload and signals). `knet dns` is knet.cli.dns.
"""
