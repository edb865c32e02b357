"""knet.cli."""
