"""Python SDK for Trackhouse: server-side events over the OpenPanel-compatible batch API."""

__version__ = "1.0.0"

from trackhouse_sdk.client import (  # noqa: E402  (the client reads __version__)
    DEFAULT_API_URL,
    DeliveryError,
    DeliveryStats,
    Trackhouse,
)

__all__ = ["DEFAULT_API_URL", "DeliveryError", "DeliveryStats", "Trackhouse", "__version__"]
