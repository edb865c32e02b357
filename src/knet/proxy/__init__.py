"""knet.proxy."""
