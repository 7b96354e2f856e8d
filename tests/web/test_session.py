"""The session cookie's codec on its own: what verifies, what does not, and for how long."""

from __future__ import annotations

import time

from registry.access import authenticate, create_token, revoke_token
from registry.db.database import Database
from registry.principal import Principal
from registry.services.access import session_token
from registry.web.csrf import CsrfProtect
from registry.web.session import LIFETIME_S, SessionCodec, TokenLookup


def tokens(db: Database) -> TokenLookup:
    return lambda token_id: session_token(db, token_id)


def issue(codec: SessionCodec, db: Database, principal: Principal, **kw: float) -> str:
    assert principal.token_id is not None
    token = session_token(db, principal.token_id)
    assert token is not None
    return codec.issue(token, **kw)


def test_round_trip_and_tampering(db: Database) -> None:
    token, info = create_token(db, name="alice", role="maintainer", actor="t", namespaces=["acme"])
    codec = SessionCodec()
    value = issue(codec, db, authenticate(db, token))
    assert token not in value
    found = codec.resolve(value, tokens(db))
    assert found is not None
    session, principal = found
    assert (principal.name, principal.role, principal.namespaces) == (
        "alice",
        "maintainer",
        frozenset({"acme"}),
    )
    assert session.token_id == info.id and session.binding == value
    tid, expires, stamp, mac = value.split(".")
    # The first character: the last one's low bits are base64 padding, ignored on decode.
    flipped = ("A" if mac[0] != "A" else "B") + mac[1:]
    other, _ = create_token(db, name="eve", role="admin", actor="t")
    eve = issue(codec, db, authenticate(db, other))
    for bad in (
        f"{tid}.{expires}.{stamp}.{flipped}",  # another signature
        f"{tid}.{int(expires) + 3600}.{stamp}.{mac}",  # a longer life than was signed
        f"{int(tid) + 1}.{expires}.{stamp}.{mac}",  # another token
        f"{eve.split('.', 1)[0]}.{value.split('.', 1)[1]}",  # alice's signature on eve's id
        f"s1.{tid}.{expires}.{'0' * 64}",  # the old hand-made format
        "x" * 5000,
        token,  # the token itself is not a session
        "",
    ):
        assert codec.resolve(bad, tokens(db)) is None, bad
    # Another server secret signs differently.
    assert SessionCodec(secret=b"elsewhere").resolve(value, tokens(db)) is None


def test_lifetime_and_token_state(db: Database) -> None:
    codec = SessionCodec()
    token, info = create_token(db, name="bob", role="reader", actor="t")
    now = time.time()
    value = issue(codec, db, authenticate(db, token), now=now)
    assert codec.resolve(value, tokens(db), now=now + LIFETIME_S - 5) is not None
    assert codec.resolve(value, tokens(db), now=now + LIFETIME_S + 1) is None
    revoke_token(db, info.id, actor="t")
    assert codec.resolve(value, tokens(db), now=now) is None
    # A session never outlives its token.
    short, _ = create_token(db, name="short", role="reader", actor="t", expires_in_days=0.01)
    value = issue(codec, db, authenticate(db, short), now=now)
    expires = SessionCodec.expiry(value)
    assert expires <= now + 0.01 * 86400 + 1


def test_csrf_tokens_are_bound_to_the_session_without_a_secret() -> None:
    plain = CsrfProtect()
    minted = plain._mint("1.2.3.abc")
    assert "." in minted and plain._valid(minted, "1.2.3.abc")
    assert not plain._valid(minted, "1.2.3.abd")  # another session
    assert not plain._valid(minted, "")  # signed out
    assert not plain._valid(plain._mint(""), "1.2.3.abc")  # a pre-login token


def test_sessions_and_csrf_tokens_are_itsdangerous_values_with_their_own_salts(
    db: Database,
) -> None:
    """Keyed by the server secret and the token's stored hash, salted per purpose: a CSRF
    token never passes for a session, and an itsdangerous value signed with another salt
    or key is refused."""
    from itsdangerous import TimestampSigner, URLSafeTimedSerializer

    from registry.db import models as m
    from registry.web import csrf, session

    token, info = create_token(db, name="carol", role="reader", actor="t")
    codec = SessionCodec(secret=b"server")
    value = issue(codec, db, authenticate(db, token))
    with db.read() as s:
        row = s.get(m.Token, info.id)
        assert row is not None
        token_hash = row.token_hash
    key = b"server" + token_hash.encode()
    kw = {"key_derivation": "hmac", "digest_method": __import__("hashlib").sha256}
    payload = TimestampSigner(key, salt=session.SALT, **kw).unsign(value, max_age=60)
    assert payload.decode() == f"{info.id}.{SessionCodec.expiry(value)}"
    # The same payload under the CSRF salt, or without the server secret, is refused.
    for signer in (
        TimestampSigner(key, salt=csrf.SALT, **kw),
        TimestampSigner(token_hash.encode(), salt=session.SALT, **kw),
    ):
        assert codec.resolve(signer.sign(payload).decode(), tokens(db)) is None
    # CSRF tokens: timed, salted, keyed by the secret and the session.
    protect = CsrfProtect(secret=b"server")
    minted = protect._mint(value)
    nonce = URLSafeTimedSerializer(
        b"server\x00" + value.encode(), salt=csrf.SALT, signer_kwargs=kw
    ).loads(minted, max_age=60)
    assert isinstance(nonce, str) and len(nonce) == 43
    assert codec.resolve(minted, tokens(db)) is None and not protect._valid(value, value)
