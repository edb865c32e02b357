"""`agnhost test-webserver`: Go's http.FileServer of the container's `/` on --port (80), with the
CORS and Cache-Control headers upstream sets (test/images/agnhost/test-webserver). knet's
containers see the node's filesystem (until they get a root of their own), so this serves it."""

from __future__ import annotations

import html
import os
import signal
from urllib.parse import quote, unquote

from knet.node.agnhost import flags as fl
from knet.node.agnhost.golang import errno_words, fatal
from knet.node.agnhost.httpserve import Request, Response, listen_http, serve_in_thread

FLAGS = [fl.Flag("port", fl.INT, 80, "Port number.")]
HEADERS = [("Cache-Control", "private"), ("Access-Control-Allow-Origin", "*"),
           ("Access-Control-Allow-Credentials", "true"), ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
           ("Access-Control-Allow-Headers",
            "DNT,X-Mx-ReqToken,Keep-Alive,User-Agent,X-Requested-With,Cache-Control,Content-Type")]


def answer(r: Request, root: str = "/") -> Response:
    """http.FileServer: a directory lists its entries (`<pre>` of links), a file is its bytes."""
    rel = os.path.normpath("/" + unquote(r.path)).lstrip("/")
    path = os.path.join(root, rel)
    if os.path.isdir(path):
        if not r.path.endswith("/"):
            return Response(301, b"", [*HEADERS, ("Location", r.path.rsplit("/", 1)[-1] + "/")])
        try:
            names = sorted(os.listdir(path))
        except OSError:
            return Response.error("403 Forbidden", 403)
        links = []
        for name in names:
            shown = name + ("/" if os.path.isdir(os.path.join(path, name)) else "")
            links.append(f'<a href="{quote(shown)}">{html.escape(shown)}</a>\n')
        body = ("<!doctype html>\n<meta name=\"viewport\" content=\"width=device-width\">\n<pre>\n"
                + "".join(links) + "</pre>\n").encode()
        return Response(200, body, [*HEADERS, ("Content-Type", "text/html; charset=utf-8")])
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return Response(404, b"404 page not found\n", [*HEADERS, ("Content-Type", "text/plain; charset=utf-8"),
                                                       ("X-Content-Type-Options", "nosniff")])
    except OSError:
        return Response(403, b"403 Forbidden\n", [*HEADERS, ("Content-Type", "text/plain; charset=utf-8")])
    return Response(200, data, [*HEADERS, ("Content-Type", "text/plain; charset=utf-8")])


def run(argv: list[str]) -> int:
    values, _ = fl.parse(FLAGS, argv)
    try:
        server = listen_http(values["port"], answer)
    except OSError as exc:
        fatal(f"listen tcp :{values['port']}: bind: {errno_words(exc)}")
    serve_in_thread(server)
    while True:
        signal.pause()
