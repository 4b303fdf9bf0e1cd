"""The startup check names what is missing and the extra that installs it."""

from __future__ import annotations

import pytest

from voiceagent.speech import availability
from voiceagent.speech.availability import (
    INSTALL_HINT,
    OfflineEnginesMissing,
    check_offline_engines,
)


def test_everything_installed_gives_no_messages() -> None:
    found = check_offline_engines()
    assert found.speech_ok and found.voice_ok and found.piper_ok
    assert found.messages() == []
    found.require_speech()
    found.require_voice()


def test_missing_recogniser_names_the_package_and_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(availability, "_installed", lambda module: module != "pocketsphinx")
    found = check_offline_engines()
    assert not found.speech_ok
    assert found.voice_ok  # the voice does not need the recogniser
    (message,) = found.messages()
    assert "pocketsphinx" in message and INSTALL_HINT in message
    with pytest.raises(OfflineEnginesMissing, match="offline"):
        found.require_speech()


def test_missing_piper_falls_back_to_espeak_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(availability, "_installed", lambda module: module != "piper")
    found = check_offline_engines()
    assert found.voice_ok and not found.piper_ok
    assert any("espeak-ng" in line and INSTALL_HINT in line for line in found.messages())


def test_no_voice_at_all_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        availability, "_installed", lambda module: module not in {"piper", "espeakng_loader"}
    )
    found = check_offline_engines()
    assert not found.voice_ok
    with pytest.raises(OfflineEnginesMissing, match="local voice"):
        found.require_voice()
