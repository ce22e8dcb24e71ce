"""Signed unsubscribe tokens: ``<subscription id>.<HMAC-SHA256 of it>``, URL-safe.

The key is ``TRACKHOUSE_REPORTS_SIGNING_KEY`` or, unset, one generated into the data directory
at first use (shared by every process on it, like the warehouse password). A token never
expires: an old report's link must still unsubscribe.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from trackhouse.secure_files import read_or_create_secret
from trackhouse.settings import Settings, get_settings

PURPOSE = b"trackhouse-report-unsubscribe:"


def _key(settings: Settings) -> bytes:
    configured = settings.reports_signing_key.get_secret_value()
    if configured:
        return configured.encode()
    return read_or_create_secret(settings.data_dir / "reports-signing-key").encode()


def _mac(subscription_id: int, settings: Settings) -> str:
    digest = hmac.new(_key(settings), PURPOSE + str(subscription_id).encode(),
                      hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(subscription_id: int, settings: Settings | None = None) -> str:
    return f"{subscription_id}.{_mac(subscription_id, settings or get_settings())}"


def verify(token: str, settings: Settings | None = None) -> int | None:
    """The subscription id a token was signed for, or None for anything else."""
    number, _, mac = token.partition(".")
    if not (number.isascii() and number.isdigit()) or len(number) > 18 or not mac.isascii():
        return None
    subscription_id = int(number)
    if not hmac.compare_digest(mac, _mac(subscription_id, settings or get_settings())):
        return None
    return subscription_id
