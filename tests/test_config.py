"""Settings: validated once, failing fast with the variable's name."""

from __future__ import annotations

import pytest

from voiceagent.config import ConfigError, Settings


def test_defaults_select_the_offline_pipeline() -> None:
    settings = Settings.from_env({})
    assert settings.resolved_model() == "offline"
    assert settings.resolved_tts() == "offline"
    assert settings.ws_outgoing_max == 512 and settings.ws_incoming_audio_max == 32
    assert settings.ws_tts_chunk_bytes == 9600


def test_auto_picks_cloud_providers_when_keys_are_set() -> None:
    settings = Settings.from_env(
        {
            "AZURE_OPENAI_API_KEY": "k",
            "AZURE_OPENAI_REALTIME_URL": "wss://x.openai.azure.com/openai/v1/realtime?model=d",
            "CARTESIA_API_KEY": "c",
        }
    )
    assert settings.resolved_model() == "azure"
    assert settings.resolved_tts() == "cartesia"
    assert Settings.from_env({"OPENAI_API_KEY": "k"}).resolved_model() == "openai"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"WS_OUTGOING_MAX": "lots"}, "WS_OUTGOING_MAX"),
        ({"WS_INCOMING_AUDIO_MAX": "0"}, "WS_INCOMING_AUDIO_MAX"),
        ({"WS_TTS_CHUNK_BYTES": "4095"}, "WS_TTS_CHUNK_BYTES"),
        ({"VOICEAGENT_MODEL": "gpt5"}, "VOICEAGENT_MODEL"),
        ({"VOICEAGENT_TTS": "loud"}, "VOICEAGENT_TTS"),
        ({"VOICEAGENT_AGENT": "not a path"}, "VOICEAGENT_AGENT"),
        ({"AZURE_OPENAI_REALTIME_URL": "https://x"}, "AZURE_OPENAI_REALTIME_URL"),
        ({"VOICEAGENT_MODEL": "azure"}, "AZURE_OPENAI_API_KEY"),
        ({"VOICEAGENT_TTS": "cartesia"}, "CARTESIA_API_KEY"),
        ({"VOICEAGENT_TTS_FALLBACK": "maybe"}, "VOICEAGENT_TTS_FALLBACK"),
        ({"VOICEAGENT_LOG_LEVEL": "chatty"}, "VOICEAGENT_LOG_LEVEL"),
    ],
)
def test_bad_values_fail_fast_naming_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)


def test_language_follows_cartesia_default_unless_set() -> None:
    assert Settings.from_env({"CARTESIA_DEFAULT_LANGUAGE": "vi"}).language == "vi"
    env = {"CARTESIA_DEFAULT_LANGUAGE": "vi", "VOICEAGENT_LANGUAGE": "en"}
    assert Settings.from_env(env).language == "en"


def test_every_setting_is_documented_in_env_example() -> None:
    from pathlib import Path

    from voiceagent.config_env import _ENV_NAMES

    example = (Path(__file__).parent.parent / ".env.example").read_text()
    missing = [name for name in _ENV_NAMES.values() if f"{name}=" not in example]
    assert missing == []


def test_transport_message_limit_follows_the_protocol_maxima() -> None:
    # Empty: derived from the protocol (the largest message, to a power of two).
    assert Settings.from_env({}).transport_max_message_bytes() == 262144
    bigger = Settings.from_env({"WS_MAX_AUDIO_FRAME_BYTES": "200000"})
    assert bigger.transport_max_message_bytes() == 1 << 20
    assert Settings.from_env({"WS_MAX_MESSAGE_BYTES": "140000"}).transport_max_message_bytes() == (
        140000
    )
    # Below what the protocol itself allows: refused, naming the variable.
    with pytest.raises(ConfigError, match="WS_MAX_MESSAGE_BYTES"):
        Settings.from_env({"WS_MAX_MESSAGE_BYTES": "65536"})


def test_frame_durations_are_ordered_and_fit_the_byte_limit() -> None:
    settings = Settings.from_env({})
    assert (settings.ws_min_audio_frame_ms, settings.ws_max_audio_frame_ms) == (10, 200)
    custom = Settings.from_env({"WS_PREFERRED_AUDIO_FRAME_MS": "20"})
    assert custom.ws_preferred_audio_frame_ms == 20
    with pytest.raises(ConfigError, match="WS_PREFERRED_AUDIO_FRAME_MS"):
        Settings.from_env({"WS_PREFERRED_AUDIO_FRAME_MS": "300"})
    with pytest.raises(ConfigError, match="WS_PREFERRED_AUDIO_FRAME_MS"):
        Settings.from_env({"WS_MIN_AUDIO_FRAME_MS": "150"})
    # 200 ms is 9 600 bytes: a byte limit below it would refuse announced frames.
    with pytest.raises(ConfigError, match="WS_MAX_AUDIO_FRAME_MS"):
        Settings.from_env({"WS_MAX_AUDIO_FRAME_BYTES": "8000"})
