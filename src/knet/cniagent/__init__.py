"""The network add-on's CNI agent (`knet cni-agent`): the node's CNI config and host-gw routes."""
