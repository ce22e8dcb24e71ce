"""Event data as text: the escaping helpers, the figures built from hostile names, and the
requester of a login (IP, https) as plain functions. The rendered pages are checked in a real
browser by test_browser_security.py."""

from __future__ import annotations

import pandas as pd
import pytest
from markdown_it import MarkdownIt

from app import charts
from app.auth import requester_from, served_over_https
from app.text import markdown_escape, markdown_text, plotly_labels, plotly_text
from queries.periods import Granularity

HOSTILE = ["<a href=https://evil.example>x</a>", "<b>bold</b>", "a<br>b",
           "[clickme](https://evil.example/caption)", "&lt;b&gt;entity&lt;/b&gt;",
           "**strong** _em_ `code` ~~gone~~ :red[red] $x^2$ <https://evil.example/auto>",
           "line one\nline two", "https://evil.example/bare www.evil.example"]


def _render(markdown: str) -> str:
    rendered = MarkdownIt("commonmark").enable("strikethrough").render(markdown)
    return rendered.removeprefix("<p>").removesuffix("</p>\n")


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") \
        .replace('"', "&quot;")


@pytest.mark.parametrize("text", [*HOSTILE, "`tick`", "`` two ``", " spaced ", "a`b"])
def test_markdown_text_is_one_code_span_of_the_text_itself(text: str) -> None:
    # a code span: no link, autolink (Streamlit links bare URLs after parsing, so escapes
    # are not enough), emphasis, directive, LaTeX or raw HTML applies inside it
    shown = _html_escape(text.replace("\n", " "))
    assert _render(markdown_text(text)) == f"<code>{shown}</code>"


def test_markdown_text_of_nothing_is_nothing() -> None:
    assert markdown_text("") == ""


@pytest.mark.parametrize("text", HOSTILE)
def test_markdown_escape_renders_as_the_text_itself(text: str) -> None:
    assert _render(markdown_escape(text)) == _html_escape(text.replace("\n", " "))


def test_plotly_text_escapes_what_plotly_would_render() -> None:
    assert plotly_text("<a href=https://evil.example>x</a>") == \
        "&lt;a href=https://evil.example&gt;x&lt;/a&gt;"
    assert plotly_text("a<br>b & c") == "a&lt;br&gt;b &amp; c"
    assert plotly_text("&lt;") == "&amp;lt;"  # an entity in the data shows as typed


def test_plotly_labels_escapes_text_columns_only() -> None:
    frame = pd.DataFrame({"bucket": pd.to_datetime(["2026-12-01", "2026-12-02"]),
                          "name": ["<b>bold</b>", "plain"], "events": [1, 2]})
    escaped = plotly_labels(frame, ["bucket", "name", "events", "missing"])
    assert escaped.name.tolist() == ["&lt;b&gt;bold&lt;/b&gt;", "plain"]
    assert escaped.bucket.equals(frame.bucket) and escaped.events.equals(frame.events)
    assert frame.name.tolist() == ["<b>bold</b>", "plain"]  # the caller's frame is unchanged


def _figure_text(figure) -> str:
    return figure.to_json()


def test_no_figure_carries_raw_markup_from_event_names() -> None:
    names = HOSTILE[:4]
    trend = pd.DataFrame({"bucket": pd.to_datetime(["2026-12-01"] * 4), "name": names,
                          "events": [1, 2, 3, 4]})
    steps = pd.DataFrame({"step": [1, 2, 3, 4], "event_name": names,
                          "visitors": [10, 5, 2, 1]})
    countries = pd.DataFrame({"value": ["DE", "FR"], "visitors": [3, 1]})
    figures = [charts.stacked_bars(trend, "bucket", "events", "name"),
               charts.funnel(steps), charts.world_map(countries)]
    for figure in figures:
        text = _figure_text(figure)
        for raw in ("<a href", "<b>", "<br>b", "</a>"):
            assert raw not in text
    legend = sorted(trace.name for trace in figures[0].data)
    assert legend == sorted(plotly_text(n) for n in names)
    assert list(figures[1].data[0].y)[0] == "1. &lt;a href=https://evil.example&gt;x&lt;/a&gt;"
    # untouched: the time axis and the fixed series names of the overview
    series = pd.DataFrame({"bucket": pd.to_datetime(["2026-12-01"]), "visitors": [1]})
    timeseries = charts.timeseries(series, series, "visitors", "Visitors", Granularity.DAY)
    assert [t.name for t in timeseries.data] == ["Previous period", "Visitors"]


# --- who is logging in -------------------------------------------------------------------

LOOPBACK = ["127.0.0.1/32", "::1/128"]


def test_the_ip_is_the_peer_unless_a_trusted_proxy_forwards_it() -> None:
    forwarded = {"x-forwarded-for": "203.0.113.9", "user-agent": "Firefox"}
    # Streamlit reports a loopback peer as None: a local proxy, trusted by default
    local_proxy = requester_from(None, forwarded, "http://dash.example/", LOOPBACK)
    assert (local_proxy.ip, local_proxy.user_agent) == ("203.0.113.9", "Firefox")
    # a remote peer's forwarding headers are not believed
    assert requester_from("198.51.100.7", forwarded, None, LOOPBACK).ip == "198.51.100.7"
    assert requester_from(None, {}, None, LOOPBACK).ip == "127.0.0.1"


@pytest.mark.parametrize(("url", "headers", "trusted", "expected"), [
    ("https://dash.example/", {}, False, True),  # the browser's own address
    ("http://dash.example/", {"origin": "https://dash.example"}, False, True),
    (None, {"x-forwarded-proto": "https"}, True, True),  # a trusted proxy ended TLS
    (None, {"x-forwarded-proto": "https"}, False, False),  # anyone else may not say so
    ("http://127.0.0.1:8501/", {"origin": "http://127.0.0.1:8501"}, True, False),
    (None, {}, True, False),
])
def test_https_is_detected_from_the_url_origin_or_a_trusted_proxy(
        url: str | None, headers: dict[str, str], trusted: bool, expected: bool) -> None:
    assert served_over_https(url, headers, trusted) is expected
