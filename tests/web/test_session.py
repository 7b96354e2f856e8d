"""The session cookie's codec on its own: what verifies, what does not, and for how long."""

from __future__ import annotations

import time

from registry.db.database import Database
from registry.lifecycle.access import authenticate, create_token, revoke_token
from registry.web.csrf import CsrfProtect
from registry.web.session import LIFETIME_S, SessionCodec


def test_round_trip_and_tampering(db: Database) -> None:
    token, info = create_token(db, name="alice", role="maintainer", actor="t", namespaces=["acme"])
    codec = SessionCodec()
    value = codec.issue(db, authenticate(db, token))
    assert token not in value
    found = codec.resolve(db, value)
    assert found is not None
    session, principal = found
    assert (principal.name, principal.role, principal.namespaces) == (
        "alice",
        "maintainer",
        frozenset({"acme"}),
    )
    assert session.token_id == info.id and session.binding == value
    _, tid, expires, mac = value.split(".")
    flipped = mac[:-1] + ("0" if mac[-1] != "0" else "1")
    for bad in (
        f"s1.{tid}.{expires}.{flipped}",  # another signature
        f"s1.{tid}.{int(expires) + 3600}.{mac}",  # a longer life than was signed
        f"s1.{int(tid) + 1}.{expires}.{mac}",  # another token
        f"s2.{tid}.{expires}.{mac}",
        token,  # the token itself is not a session
        "",
    ):
        assert codec.resolve(db, bad) is None, bad
    # Another server secret signs differently.
    assert SessionCodec(secret=b"elsewhere").resolve(db, value) is None


def test_lifetime_and_token_state(db: Database) -> None:
    codec = SessionCodec()
    token, info = create_token(db, name="bob", role="reader", actor="t")
    now = time.time()
    value = codec.issue(db, authenticate(db, token), now=now)
    assert codec.resolve(db, value, now=now + LIFETIME_S - 5) is not None
    assert codec.resolve(db, value, now=now + LIFETIME_S + 1) is None
    revoke_token(db, info.id, actor="t")
    assert codec.resolve(db, value, now=now) is None
    # A session never outlives its token.
    short, _ = create_token(db, name="short", role="reader", actor="t", expires_in_days=0.01)
    value = codec.issue(db, authenticate(db, short), now=now)
    expires = int(value.split(".")[2])
    assert expires <= now + 0.01 * 86400 + 1


def test_csrf_tokens_are_bound_to_the_session_without_a_secret() -> None:
    plain = CsrfProtect()
    minted = plain._mint("s1.1.2.abc")
    assert "." in minted and plain._valid(minted, "s1.1.2.abc")
    assert not plain._valid(minted, "s1.1.2.abd")  # another session
    assert not plain._valid(minted, "")  # signed out
    assert not plain._valid(plain._mint(""), "s1.1.2.abc")  # a pre-login token
