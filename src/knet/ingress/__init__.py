"""knet's ingress controller: Ingress objects -> a routing table (routing.py, pure) -> an aiohttp
reverse proxy (proxy.py) that swaps tables in place; controller.py watches the API and writes the
Ingresses' status; manifests.py is the add-on's objects (namespace ingress-nginx)."""
