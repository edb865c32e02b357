"""knet.dns."""
