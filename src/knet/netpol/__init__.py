"""knet.netpol."""
