"""Users, projects and API clients in the relational metadata database.

``accounts.db`` (engine, sessions, migrations), ``accounts.models`` (tables),
``accounts.service`` (plain functions taking a session) and ``accounts.auth`` (client
authentication for the collector). Depends only on ``trackhouse.settings`` and ``warehouse``.
"""
