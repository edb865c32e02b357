"""knet's ingress controller: Ingress objects -> a routing table (routing.py, pure) -> the
decision for each request (decide.py, pure: answer it or forward it where, with which target and
header edits) -> the transport (proxy.py: HTTP/1.1 on asyncio Protocols with httptools, swapping
tables in place; upstream.py: pooled keep-alive connections to backends); controller.py watches
the API and writes the Ingresses' status; manifests.py is the add-on's objects (namespace
ingress-nginx)."""
