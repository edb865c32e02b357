"""Raw HTTPS requests to a test apiserver over one keep-alive connection, for tests that send
bodies no client library would (wrong types, huge, deep, chunked, bad UTF-8) and must tell an
answer from a dropped connection."""

from __future__ import annotations

import http.client
import json
import ssl


class Dropped(Exception):
    """The server closed the connection without an answer."""


class Conn:
    def __init__(self, server, timeout: float = 30) -> None:
        self.server = server
        self.timeout = timeout
        self.ctx = ssl.create_default_context(cafile=server.ca_file)
        self.conn: http.client.HTTPSConnection | None = None

    def _connect(self) -> http.client.HTTPSConnection:
        if self.conn is None:
            self.conn = http.client.HTTPSConnection("127.0.0.1", self.server.port, context=self.ctx,
                                                    timeout=self.timeout)
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method: str, path: str, body: bytes | str | None = None,
                content_type: str = "application/json", chunked: bool = False,
                headers: dict | None = None) -> tuple[int, dict | None, http.client.HTTPResponse]:
        """(status, decoded JSON body or None, response); raises Dropped."""
        data = body.encode() if isinstance(body, str) else body
        h = {"Authorization": f"Bearer {self.server.token}", "Content-Type": content_type, **(headers or {})}
        conn = self._connect()
        try:
            if chunked and data is not None:
                h["Transfer-Encoding"] = "chunked"
                step = 65536
                conn.request(method, path, body=(data[i:i + step] for i in range(0, len(data), step)), headers=h,
                             encode_chunked=True)
            else:
                conn.request(method, path, body=data, headers=h)
            resp = conn.getresponse()
            raw = resp.read()
        except (http.client.HTTPException, ConnectionError, OSError) as exc:
            self.close()
            raise Dropped(f"{method} {path}: {exc!r}") from exc
        if resp.getheader("Connection", "").lower() == "close":
            self.close()
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = None
        return resp.status, doc, resp

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
