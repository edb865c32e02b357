"""knet.ipam."""
