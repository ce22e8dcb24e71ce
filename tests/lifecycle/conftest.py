"""Fixtures of the data-lifecycle tests: the dbt model tests' private databases and scenario.

The model tests' ``models_warehouse`` fixture (a raw and an analytics database of this module's
own, and a dbt runner on them) and their synthetic scenario are reused as they are.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

MODELS_TESTS = Path(__file__).resolve().parent.parent / "models"
if str(MODELS_TESTS) not in sys.path:
    sys.path.insert(0, str(MODELS_TESTS))  # models_scenario, models_reference

_spec = importlib.util.spec_from_file_location("models_conftest", MODELS_TESTS / "conftest.py")
assert _spec is not None and _spec.loader is not None
models_conftest = importlib.util.module_from_spec(_spec)
sys.modules["models_conftest"] = models_conftest
_spec.loader.exec_module(models_conftest)

models_warehouse = models_conftest.models_warehouse
