"""The Prometheus exposition of a registry, for whichever HTTP server serves it.

`exposition` picks the format from the scrape's `Accept` header (the text format, or
OpenMetrics when the scraper asks for it) with prometheus_client's own encoders.
"""

from __future__ import annotations

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector


def exposition(registry: Collector, accept: str | None = None) -> tuple[bytes, str]:
    """The registry's metrics encoded for this `Accept` header, and the content type."""
    encode, content_type = choose_encoder(accept or "")
    return encode(registry), content_type
