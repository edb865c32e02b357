"""knet.controllers."""
