"""knet.api.resources."""
