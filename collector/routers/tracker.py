"""``GET /tracker.js``: Trackhouse's browser tracker (``sdk/tracker``), ready to cache.

The minified build is committed (``sdk/tracker/dist/tracker.min.js``), so serving it needs
no node. ``/op1.js`` serves the same script, so a page using OpenPanel's script tag can
switch by changing only the host. Answers carry an ETag (304 on a match) and a gzip copy for
browsers that accept it.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from functools import cache

from fastapi import APIRouter, Request
from fastapi.responses import Response

from trackhouse.settings import PROJECT_ROOT

router = APIRouter(tags=["tracker"])

TRACKER_PATH = PROJECT_ROOT / "sdk" / "tracker" / "dist" / "tracker.min.js"
# An hour fresh, then revalidated with the ETag: a new release reaches browsers within the
# hour without breaking pages that cached the old one.
CACHE_CONTROL = "public, max-age=3600, stale-while-revalidate=86400"


@dataclass(frozen=True)
class Script:
    body: bytes
    gzipped: bytes
    etag: str


@cache
def tracker_script() -> Script:
    body = TRACKER_PATH.read_bytes()
    digest = hashlib.sha256(body).hexdigest()[:32]
    return Script(body=body, gzipped=gzip.compress(body, 9, mtime=0), etag=f'"{digest}"')


def _accepts_gzip(request: Request) -> bool:
    return any(part.split(";")[0].strip() == "gzip"
               for part in request.headers.get("accept-encoding", "").split(","))


@router.get("/tracker.js", summary="The Trackhouse browser tracker")
@router.get("/op1.js", include_in_schema=False)
async def tracker_js(request: Request) -> Response:
    script = tracker_script()
    headers = {
        "Cache-Control": CACHE_CONTROL,
        "ETag": script.etag,
        "Vary": "Accept-Encoding",
        "Access-Control-Allow-Origin": "*",
        "X-Content-Type-Options": "nosniff",
    }
    if_none_match = request.headers.get("if-none-match", "")
    if script.etag in {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    body = script.body
    if _accepts_gzip(request):
        body = script.gzipped
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type="application/javascript; charset=utf-8", headers=headers)
