"""Enrichment of incoming events: each module is one concern, each a plain function."""
