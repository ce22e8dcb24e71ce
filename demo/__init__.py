"""Demo traffic for a running Trackhouse (``trackhouse demo``): an HTTP client of the
collector, kept out of the collector's own package."""
