"""The two notification channels: a webhook (POST JSON with a Slack-compatible ``text``) and
e-mail over SMTP (``TRACKHOUSE_SMTP_*``). Each raises ``DeliveryError`` with a message fit to be
recorded and shown: never the SMTP password, never a webhook's response body beyond a line."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import httpx
import orjson

from trackhouse.settings import Settings, get_settings


class DeliveryError(Exception):
    """A notification was not delivered; the message says why (recorded, retried later)."""


def post_webhook(url: str, payload: Mapping[str, Any], settings: Settings | None = None) -> None:
    """POST ``payload`` as JSON; anything but a 2xx answer is a failure."""
    settings = settings or get_settings()
    try:
        response = httpx.post(url, content=orjson.dumps(payload),
                              headers={"content-type": "application/json"},
                              timeout=settings.webhook_timeout_s, follow_redirects=False)
    except httpx.HTTPError as error:
        raise DeliveryError(f"webhook unreachable: {type(error).__name__}: {error}") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"webhook answered HTTP {response.status_code}: "
                            f"{response.text[:200]!r}")


@dataclass
class Mail:
    to: str
    subject: str
    text: str
    html: str | None = None
    # content id -> PNG bytes, shown inline by the HTML part (``<img src="cid:...">``)
    images: dict[str, bytes] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def message(self, sender: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = sender
        message["To"] = self.to
        message["Subject"] = self.subject
        for name, value in self.headers.items():
            message[name] = value
        message.set_content(self.text)
        if self.html is not None:
            message.add_alternative(self.html, subtype="html")
            html_part = message.get_body(("html",))
            assert isinstance(html_part, EmailMessage)
            for cid, png in self.images.items():
                html_part.add_related(png, maintype="image", subtype="png", cid=f"<{cid}>")
        return message


def send_mail(mail: Mail, settings: Settings | None = None) -> None:
    """Send one e-mail through the configured SMTP server."""
    settings = settings or get_settings()
    if not settings.smtp_host:
        raise DeliveryError("no SMTP server configured (TRACKHOUSE_SMTP_HOST)")
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port,
                          timeout=settings.smtp_timeout_s) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password.get_secret_value())
            smtp.send_message(mail.message(settings.smtp_from))
    except smtplib.SMTPAuthenticationError as error:
        # the server's answer only: the password is never part of a message
        raise DeliveryError(f"SMTP login refused for {settings.smtp_user}: "
                            f"{error.smtp_code}") from None
    except (smtplib.SMTPException, OSError, ssl.SSLError) as error:
        raise DeliveryError(f"SMTP {settings.smtp_host}:{settings.smtp_port} failed: "
                            f"{type(error).__name__}: {error}") from None
