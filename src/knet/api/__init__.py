"""knet.api."""
