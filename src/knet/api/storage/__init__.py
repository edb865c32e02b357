"""knet.api.storage."""
