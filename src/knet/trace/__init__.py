"""knet.trace."""
