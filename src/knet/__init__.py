"""knet: Kubernetes service networking, built in Python, as a whole cluster on one Linux machine."""

__version__ = "0.1.0"
