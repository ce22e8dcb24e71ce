"""Finding 3 of issue 15 (ten wrong passwords, then the right one) through the real app
(AppTest): each failure is answered later than the last, the fifth locks the e-mail out, the
right password is refused while it lasts, unknown e-mails get the very same answers, and admins
see every attempt. The rule itself is unit-tested in tests/accounts/test_logins.py; a real
browser repeats the lockout in test_browser_security.py."""

from __future__ import annotations

import time

import dashboard_fixture as fd
import pytest
from dashboard_fixture import ADMIN, PASSWORD, DashboardData
from sqlalchemy import delete, select
from streamlit.testing.v1 import AppTest
from test_pages import MAIN, log_in

from accounts.logins import LoginPolicy, delay_s

WRONG = "Wrong e-mail or password."
LOCKED = "Too many failed logins for this e-mail or from this address: try again in 15 min."


def _guess(email: str, passwords: list[str]) -> tuple[list[list[str]], list[float], AppTest]:
    """Submit each password in turn from one session: the errors shown and how long each
    answer took."""
    at = AppTest.from_file(str(MAIN), default_timeout=60)
    at.run()
    errors, durations = [], []
    for password in passwords:
        at.text_input(key="login.email").input(email)
        at.text_input(key="login.password").input(password)
        started = time.monotonic()
        at.button[0].click().run()
        durations.append(time.monotonic() - started)
        errors.append([e.value for e in at.error])
    return errors, durations, at


def _forget() -> None:
    from accounts.db import session_scope
    from accounts.models import LoginAttempt

    with session_scope() as session:  # this IP's failures would slow the next run down
        session.execute(delete(LoginAttempt).where(LoginAttempt.ip == "127.0.0.1"))


@pytest.mark.parametrize("known", [True, False], ids=["known-email", "unknown-email"])
def test_ten_wrong_passwords_then_the_right_one(dashboard_data: DashboardData,
                                                forget_login_attempts, known: bool) -> None:
    from accounts import service
    from accounts.db import session_scope
    from accounts.models import LoginAttempt

    email = f"guessed.{'known' if known else 'nobody'}@dash.test"
    if known:
        with session_scope() as session:
            service.create_user(session, email=email, password=PASSWORD, project_ids=[fd.BLOG])
    _forget()
    errors, durations, at = _guess(email, [f"wrong {i}" for i in range(10)] + [PASSWORD])
    assert errors == [[WRONG]] * 5 + [[LOCKED]] * 6
    assert not at.metric and [t.value for t in at.title] == ["Trackhouse"]  # not logged in
    # each of the first four failures is answered only after its delay: 1, 2, 4, 8 times the
    # first delay (shortened for tests by the session's TRACKHOUSE_LOGIN_FIRST_DELAY_MS)
    first = LoginPolicy.from_settings().first_delay_s
    for index in range(4):
        assert durations[index] >= delay_s(index + 1, first), durations
    assert durations[0] < delay_s(3, first), durations  # and not all slow from the start
    # refused attempts cost nothing: no password check, no delay
    assert max(durations[5:]) < delay_s(3, first), durations
    with session_scope() as session:
        rows = session.scalars(select(LoginAttempt).where(LoginAttempt.email == email)
                               .order_by(LoginAttempt.id)).all()
    assert [r.outcome for r in rows] == ["failed"] * 5 + ["refused"] * 6
    assert {r.ip for r in rows} == {"127.0.0.1"}


def test_admins_see_the_logins(dashboard_data: DashboardData, forget_login_attempts) -> None:
    _forget()
    errors, _, _ = _guess("typo@dash.test", ["not it"])
    assert errors == [[WRONG]]
    at = log_in(AppTest.from_file(str(MAIN), default_timeout=60), ADMIN)
    assert at.metric
    at.switch_page("app_pages/admin.py").run()
    assert not at.exception
    table = next(d.value for d in at.dataframe if "outcome" in d.value.columns)
    mine = table[table["e-mail"].isin(["typo@dash.test", ADMIN])]
    assert mine[["e-mail", "outcome", "IP"]].values.tolist()[:2] == [
        [ADMIN, "succeeded", "127.0.0.1"], ["typo@dash.test", "failed", "127.0.0.1"]]
    assert table["time"].is_monotonic_decreasing
