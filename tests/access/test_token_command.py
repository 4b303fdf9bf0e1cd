"""`voiceagent token`, and the start-up warning for an open server with provider keys."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from voiceagent.access.token_command import KEY_ALGORITHMS
from voiceagent.access.tokens import ASYMMETRIC_ALGORITHMS, TokenVerifier
from voiceagent.cli import exposure_warning, main
from voiceagent.config import Settings

SECRET = "s" * 40


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no developer .env
    for name in ("VOICEAGENT_AUTH_SECRET", "VOICEAGENT_AUTH_PUBLIC_KEY", "VOICEAGENT_ENV_FILE"):
        monkeypatch.delenv(name, raising=False)


def test_mints_a_token_the_server_accepts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VOICEAGENT_AUTH_SECRET", SECRET)
    assert main(["token", "--sub", "alice", "--room", "demo-*", "--ttl", "10m"]) == 0
    grant = TokenVerifier(secret=SECRET).verify(capsys.readouterr().out.strip(), "demo-7")
    assert grant.sub == "alice"
    assert abs(grant.expires_at - (time.time() + 600)) < 5


def test_grants_on_the_command_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VOICEAGENT_AUTH_SECRET", SECRET)
    argv = ["token", "--sub", "b", "--room", "r", "--no-audio", "--max-duration", "90s"]
    assert main([*argv, "--admin"]) == 0
    grant = TokenVerifier(secret=SECRET).verify(capsys.readouterr().out.strip(), "r")
    assert (grant.audio, grant.text, grant.max_duration_s, grant.admin) == (False, True, 90, True)


def test_an_asymmetric_key_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "key.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    argv = ["token", "--sub", "c", "--room", "r", "--private-key", str(pem)]
    assert main([*argv, "--algorithm", "ES256"]) == 0
    token = capsys.readouterr().out.strip()
    assert TokenVerifier(public_key=public.decode()).verify(token, "r").sub == "c"


def test_without_a_key_it_says_what_to_set(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--sub", "a", "--room", "r"]) == 2
    assert "VOICEAGENT_AUTH_SECRET" in capsys.readouterr().err


def test_a_bad_duration_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEAGENT_AUTH_SECRET", SECRET)
    with pytest.raises(SystemExit) as exited:
        main(["token", "--sub", "a", "--room", "r", "--ttl", "soon"])
    assert exited.value.code == 2


def test_the_command_offers_the_algorithms_the_server_accepts() -> None:
    assert KEY_ALGORITHMS == ASYMMETRIC_ALGORITHMS


def test_an_open_public_server_with_keys_is_warned_about_once() -> None:
    keys = Settings(openai_api_key="sk-test")
    assert exposure_warning("0.0.0.0", keys) is not None
    assert "VOICEAGENT_AUTH_SECRET" in (exposure_warning("0.0.0.0", keys) or "")
    assert exposure_warning("127.0.0.1", keys) is None
    assert exposure_warning("0.0.0.0", Settings()) is None  # offline: nothing to spend
    assert exposure_warning("0.0.0.0", Settings(openai_api_key="k", auth_secret=SECRET)) is None
