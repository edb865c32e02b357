"""The client's exception tree.

    ApiError          a non-2xx answer from the API server (carries the Status body)
    ConfigError       no usable kubeconfig / in-cluster configuration
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A non-2xx answer; `body` is the Status object the server sent (or a synthesized one)."""

    def __init__(self, status: int, reason: str, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body if body is not None else {}

    @classmethod
    def from_status(cls, http_status: int, body: dict[str, Any] | None) -> ApiError:
        """Build from a metav1.Status dict (as sent with errors and in watch ERROR events)."""
        body = body or {}
        code = int(body.get("code") or http_status)
        return cls(code, str(body.get("reason") or ""), str(body.get("message") or ""), body)

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def already_exists(self) -> bool:
        return self.status == 409 and self.reason == "AlreadyExists"

    @property
    def gone(self) -> bool:
        return self.status == 410


class ConfigError(Exception):
    """No kubeconfig or in-cluster configuration could be loaded."""
