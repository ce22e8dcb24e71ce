"""Cost of share links: what a share session adds to each dashboard run, and why the token's
hash is sha256 rather than argon2 (ADR 0016).

    .venv/bin/python bench/share.py [--database-url URL] [--links 10000] [--seconds 2]

Creates a throwaway project with --links share links (in a temporary SQLite file unless
--database-url is given), then measures in one run:
- opening a link by its token (sha256 + indexed lookup + last-opened write), per call;
- the per-run check of an open share session (link state by id + the project), per call;
- the login check every logged-in run makes (app.auth.user_for_token), for comparison;
- one argon2 verify at the configured cost: what a lookup would cost per row if tokens were
  argon2-hashed (a salted hash cannot be found by an index; every row would be tried).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def per_call_ms(call: Callable[[], object], seconds: float) -> tuple[float, float]:
    """(median, p95) milliseconds of ``call`` run repeatedly for about ``seconds``."""
    times: list[float] = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        begin = time.perf_counter()
        call()
        times.append((time.perf_counter() - begin) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="metadata database (default: temporary SQLite)")
    parser.add_argument("--links", type=int, default=10_000, help="share links in the table")
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each timing")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="trackhouse-bench-share-")
    os.environ["TRACKHOUSE_DATABASE_URL"] = args.database_url or f"sqlite:///{folder}/bench.db"
    from accounts import service, shares
    from accounts.db import safe_url, session_scope, upgrade
    from accounts.hashing import hash_secret, verify_secret
    from accounts.models import LoginSession, ShareLink, utcnow
    from app.auth import token_hash, user_for_token

    try:
        upgrade()
        project_id = f"bench-{os.getpid()}"
        with session_scope() as session:
            service.create_project(session, name="Bench", project_id=project_id, mirror=False)
            user = service.create_user(session, email=f"{project_id}@bench.test",
                                       password="bench-password")
            login = "login-token-" + "x" * 32
            session.add(LoginSession(user_id=user.id, token_hash=token_hash(login),
                                     expires_at=utcnow().replace(year=utcnow().year + 1)))
            session.bulk_save_objects([
                ShareLink(project_id=project_id, token_hash=shares.token_hash(f"filler-{i}"))
                for i in range(args.links - 1)])
            link, token = shares.create_share_link(session, project_id=project_id)
            link_id = link.id

        def open_token() -> None:
            with session_scope() as session:
                assert shares.open_share_token(session, token)[0] is shares.LinkState.OPEN

        def run_check() -> None:
            with session_scope() as session:
                assert shares.share_link_state(session, link_id) is shares.LinkState.OPEN
                service.get_project(session, project_id)

        def login_check() -> None:
            assert user_for_token(login) is not None

        stored = hash_secret(token)

        def argon2_verify() -> None:
            assert verify_secret(stored, token)

        print(f"metadata database: {safe_url()}, {args.links:,} share links; "
              f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (shared "
              "machine: absolute times are noisy, compare the ratios)")
        figures = {
            "open a link by its token (sha256 + index)": per_call_ms(open_token, args.seconds),
            "share session, per run (state + project)": per_call_ms(run_check, args.seconds),
            "login session, per run (for comparison)": per_call_ms(login_check, args.seconds),
            "one argon2 verify (configured cost)": per_call_ms(argon2_verify, args.seconds),
        }
        for name, (median, p95) in figures.items():
            print(f"  {name:<46} median {median:8.3f} ms   p95 {p95:8.3f} ms")
        run_median = figures["share session, per run (state + project)"][0]
        login_median = figures["login session, per run (for comparison)"][0]
        open_median = figures["open a link by its token (sha256 + index)"][0]
        argon2_median = figures["one argon2 verify (configured cost)"][0]
        print(f"share run check / login run check: {run_median / login_median:.2f}x")
        print(f"argon2-hashed tokens would try every row: {args.links:,} x {argon2_median:.1f} "
              f"ms = {args.links * argon2_median / 1000:,.0f} s per open, "
              f"{args.links * argon2_median / open_median:,.0f}x the sha256 lookup")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
