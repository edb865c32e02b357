"""knet.scheduler."""
