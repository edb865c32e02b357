"""knet.client: the async Kubernetes API client and informer every knet component uses.

Contract: docs/contracts.md s.2. Objects are wire dicts. `ApiClient` (real, aiohttp) and
`FakeApi` (in-memory, for tests) implement the same `Api` protocol.
"""

from knet.client.api import ApiClient
from knet.client.config import ClientConfig, load_config
from knet.client.errors import ApiError, ConfigError
from knet.client.informer import Informer, object_key
from knet.client.protocol import Api
from knet.client.watch import WatchEvent

__all__ = [
    "Api",
    "ApiClient",
    "ApiError",
    "ClientConfig",
    "ConfigError",
    "Informer",
    "WatchEvent",
    "load_config",
    "object_key",
]
