"""The index pages of the web-server images knet stands in for with netexec (knet.node.workloads):
`curl` of an nginx or httpd Service shows the page those images serve at `/`, as on any cluster
(`kubectl create deployment web --image=nginx`, then `curl` the Service: "Welcome to nginx!")."""

from __future__ import annotations

# nginx's /usr/share/nginx/html/index.html (the official image, 1.25: 615 bytes).
NGINX_INDEX = """<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto;
font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>

<p>For online documentation and support please refer to
<a href="http://nginx.org/">nginx.org</a>.<br/>
Commercial support is available at
<a href="http://nginx.com/">nginx.com</a>.</p>

<p><em>Thank you for using nginx.</em></p>
</body>
</html>
"""

# httpd's htdocs/index.html (the official image).
HTTPD_INDEX = "<html><body><h1>It works!</h1></body></html>\n"

INDEX_PAGES = {"nginx": NGINX_INDEX, "httpd": HTTPD_INDEX}
# The paths at which the servers answer with their index page.
INDEX_PATHS = ("/", "/index.html")
