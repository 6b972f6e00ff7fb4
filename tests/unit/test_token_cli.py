"""``clawbeat token``: argument checking (the commands themselves run in test_api_auth)."""

from __future__ import annotations

import pytest

from monitor.cli import main
from monitor.store.tokens import TOKEN_PREFIX, hash_token, new_token


def test_a_bad_scope_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["token", "create", "--scope", "root"])
    assert exited.value.code == 2
    assert "invalid choice: 'root'" in capsys.readouterr().err


def test_tokens_are_long_random_and_hashed() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    for token in tokens:
        assert token.startswith(TOKEN_PREFIX)
        assert len(token) == len(TOKEN_PREFIX) + 43  # 256 bits, URL-safe base64
        digest = hash_token(token)
        assert len(digest) == 64
        assert token not in digest
