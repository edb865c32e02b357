"""knet.client."""
