"""knet.cluster."""
