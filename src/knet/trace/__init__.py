"""knet trace: walk packets through rendered rules in Python (the simulated dataplane)."""
