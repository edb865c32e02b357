"""knet trace: where a connection goes across the cluster's nodes and why (view: what FROM/TO name;
dataplane: each node's rules, live or rendered; path: the walk; report: text and JSON; probe: a real
connection checked against the walk). The per-node packet walkers live next to the rules they
walk: knet.proxy.iptables_walk and knet.proxy.nftables_walk."""
