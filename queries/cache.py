"""Result caching the query layer asks for, supplied by whoever runs it.

A query function is marked ``@cached(ttl_s)``; it caches only once a backend is installed.
The Streamlit app installs ``st.cache_data`` (app/main.py), so the dashboards cache as before;
the read API and the alerts run uncached, since a collector or Dagster process has no Streamlit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, Protocol, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class Backend(Protocol):
    def __call__(self, function: Callable[..., Any], ttl_s: int) -> Callable[..., Any]: ...


_backend: Backend | None = None


def use(backend: Backend | None) -> None:
    """Install (or, with None, remove) the cache every ``@cached`` function goes through."""
    global _backend
    _backend = backend


class CachedFunction:
    """A query function and its cached variants, one per backend it has been called under."""

    def __init__(self, function: Callable[..., Any], ttl_s: int) -> None:
        functools.update_wrapper(self, function)
        self.function, self.ttl_s = function, ttl_s
        self._variants: dict[Backend, Callable[..., Any]] = {}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        backend = _backend
        if backend is None:
            return self.function(*args, **kwargs)
        variant = self._variants.get(backend)
        if variant is None:
            variant = self._variants.setdefault(backend, backend(self.function, self.ttl_s))
        return variant(*args, **kwargs)

    def clear(self) -> None:
        """Drop every cached answer (e.g. after a dbt build a sensor must see)."""
        for variant in self._variants.values():
            getattr(variant, "clear", lambda: None)()


def cached(ttl_s: int) -> Callable[[Callable[P, R]], Callable[P, R]]:
    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        return CachedFunction(function, ttl_s)

    return decorate
