"""knet.net."""
