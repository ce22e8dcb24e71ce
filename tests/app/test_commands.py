"""`trackhouse admin bootstrap` creates the first admin once and prints its password once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from accounts import service
from accounts.db import session_scope
from trackhouse.settings import Settings

TRACKHOUSE = str(Path(sys.executable).parent / "trackhouse")


def bootstrap(data_dir: Path) -> str:
    env = {key: value for key, value in os.environ.items()
           if key != "TRACKHOUSE_DATABASE_URL"} | {"TRACKHOUSE_DATA_DIR": str(data_dir)}
    done = subprocess.run([TRACKHOUSE, "admin", "bootstrap"], env=env, capture_output=True,
                          text=True, timeout=120, check=True)
    return done.stdout


def test_bootstrap_creates_one_admin_and_prints_its_password_once(tmp_path: Path) -> None:
    first = bootstrap(tmp_path)
    password = re.search(r"password:\s+(\S+)", first)
    email = re.search(r"e-mail:\s+(\S+)", first)
    assert password and email, first
    settings = Settings(data_dir=tmp_path)
    with session_scope(settings) as session:
        user = service.authenticate_user(session, email.group(1), password.group(1))
        assert user is not None and user.is_admin
        assert user.password_hash != password.group(1)
    second = bootstrap(tmp_path)
    assert password.group(1) not in second
    assert "already" in second
    with session_scope(settings) as session:
        assert len(service.list_users(session)) == 1
