"""knet.node."""
