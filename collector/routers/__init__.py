"""Thin HTTP routers; the work happens in plain functions (``collector.ingest``)."""
