"""The unsubscribe link of the e-mail reports (alerts/reports.py): public, authorised by the
signed token alone. GET shows a confirmation button (mail scanners follow links and must not
unsubscribe anyone); POST unsubscribes, which is also RFC 8058's one-click request that mail
clients send from the ``List-Unsubscribe-Post`` header."""

from __future__ import annotations

import html
import logging

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from sqlalchemy.exc import SQLAlchemyError

from accounts.db import session_scope
from accounts.errors import NotFound
from alerts import tokens
from alerts.rules import unsubscribe

router = APIRouter(tags=["reports"])
log = logging.getLogger(__name__)
PATH = "/reports/unsubscribe"
TokenQuery = Query(default="", max_length=200, description="The token of the report's link.")


def _page(status: int, title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<meta name='robots' content='noindex'></head><body style='font-family:sans-serif'>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>", status_code=status,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


def _invalid() -> HTMLResponse:
    return _page(400, "Invalid link", "<p>This unsubscribe link is not valid: copy the whole "
                 "link from the report e-mail.</p>")


@router.get(PATH, summary="Confirm unsubscribing from an e-mail report",
            response_class=HTMLResponse)
def confirm(token: str = TokenQuery) -> HTMLResponse:
    if tokens.verify(token) is None:
        return _invalid()
    return _page(200, "Unsubscribe from this report?",
                 f"<form method='post' action='{PATH}?token={html.escape(token)}'>"
                 "<button type='submit'>Unsubscribe</button></form>")


@router.post(PATH, summary="Unsubscribe from an e-mail report (also RFC 8058 one-click)",
             response_class=HTMLResponse)
def unsubscribe_report(token: str = TokenQuery) -> HTMLResponse:
    subscription_id = tokens.verify(token)
    if subscription_id is None:
        return _invalid()
    try:
        with session_scope() as session:
            subscription = unsubscribe(session, subscription_id)
            project, email = subscription.project_id, subscription.email
    except NotFound:
        return _page(404, "Subscription not found",
                     "<p>This report subscription no longer exists: nothing more is sent.</p>")
    except SQLAlchemyError as error:
        log.warning("unsubscribe %s failed: %s", subscription_id, error)
        return _page(503, "Try again later", "<p>The unsubscribe could not be stored right "
                     "now; please open the link again in a few minutes.</p>")
    return _page(200, "Unsubscribed",
                 f"<p>{html.escape(email)} will receive no more reports of "
                 f"{html.escape(project)}.</p>")
