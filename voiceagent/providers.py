"""Build the shared providers (model, TTS, agent graph) from `Settings`.

Each provider module is imported only when it is selected, so importing voiceagent
stays cheap and a missing optional engine fails with a message naming the extra to
install instead of an ImportError at import time.
"""

from __future__ import annotations

import logging
from pathlib import Path

import trio

from voiceagent.config import ConfigError, Settings
from voiceagent.graph import load_agent
from voiceagent.metrics import PriceTable
from voiceagent.models.base import RealtimeModel
from voiceagent.redact import redact_url
from voiceagent.session.registry import SessionRegistry
from voiceagent.session.services import Services
from voiceagent.store import open_store
from voiceagent.tts.base import TTS

log = logging.getLogger("voiceagent.providers")


class ProviderUnavailable(RuntimeError):
    """A selected provider cannot run here (an optional package is not installed).

    Sessions then get a `no_provider` error naming the extra to install. A wrong
    setting is a `ConfigError` instead, and stops the server at startup.
    """


def build_services(settings: Settings) -> Services:
    agent = load_agent(settings.agent)
    services = Services(
        settings=settings,
        agent=agent,
        registry=SessionRegistry(),
        tool_limiter=trio.CapacityLimiter(settings.tool_threads),
        prices=PriceTable(
            text_in=settings.price_text_in,
            text_out=settings.price_text_out,
            audio_in=settings.price_audio_in,
            audio_out=settings.price_audio_out,
            cached_in=settings.price_cached_in,
        ),
    )
    services.store = open_store(settings)
    if settings.record:
        from voiceagent.recordings import RecordingWriter

        services.recordings = RecordingWriter(Path(settings.data_dir) / "recordings")
    try:
        services.model = build_model(settings)
    except ProviderUnavailable as exc:
        services.model_problem = str(exc)
        log.error("no speech model: %s", exc)
    try:
        services.tts = build_tts(settings)
    except ProviderUnavailable as exc:
        log.error("no voice: %s (sessions run text-only)", exc)
    return services


def build_model(settings: Settings) -> RealtimeModel:
    choice = settings.resolved_model()
    if choice == "offline":
        from voiceagent.speech.availability import OfflineEnginesMissing, check_offline_engines

        try:
            check_offline_engines().require_speech()
        except OfflineEnginesMissing as exc:
            raise ProviderUnavailable(str(exc)) from exc
        from voiceagent.brain import OfflineBrain
        from voiceagent.models.offline import OfflineModel, OfflineModelConfig
        from voiceagent.speech.vad import VadConfig

        vad = VadConfig(
            threshold=settings.vad_threshold,
            prefix_padding_ms=settings.vad_prefix_padding_ms,
            silence_duration_ms=settings.vad_silence_duration_ms,
        )
        config = OfflineModelConfig(
            vad=vad,
            max_text_chars=settings.ws_max_text_chars,
            # One setting, one behaviour: semantic_vad is the end-of-turn model offline
            # and the provider's semantic VAD with the Realtime models.
            semantic_turn=settings.turn_detection == "semantic_vad",
            turn_eagerness=settings.vad_eagerness,
            turn_words=settings.turn_words,
        )
        # One brain per conversation: the model calls the factory on every connect.
        return OfflineModel(config, brain_factory=OfflineBrain)
    from voiceagent.models.realtime import RealtimeAPIModel, RealtimeConfig, RealtimeConfigError

    if choice == "azure":
        url, key, model = settings.azure_realtime_url, settings.azure_api_key, ""
    else:
        url, key = settings.openai_realtime_url, settings.openai_api_key
        model = settings.openai_realtime_model
    config = RealtimeConfig(
        url=url,
        api_key=key,
        model=model,
        voice=settings.realtime_voice,
        turn_detection=settings.turn_detection,  # type: ignore[arg-type]
        vad_threshold=settings.vad_threshold,
        prefix_padding_ms=settings.vad_prefix_padding_ms,
        silence_duration_ms=settings.vad_silence_duration_ms,
        eagerness=settings.vad_eagerness,  # type: ignore[arg-type]
        create_response=settings.vad_create_response,
        interrupt_response=settings.vad_interrupt_response,
        # The session's interruption policy decides turns (docs/turn-taking.md), unless
        # it is off or the provider's own answering was turned off by hand.
        hold_turns=settings.resume_false_interruption
        and settings.vad_create_response
        and settings.vad_interrupt_response,
        transcription_model=settings.transcription_model or None,
        transcription_language=settings.transcription_language or None,
        noise_reduction=settings.noise_reduction or None,  # type: ignore[arg-type]
        connect_timeout=settings.model_connect_timeout_s,
    )
    try:
        return RealtimeAPIModel(config.validate())
    except RealtimeConfigError as exc:
        variable = "AZURE_OPENAI_REALTIME_URL" if choice == "azure" else "OPENAI_REALTIME_URL"
        raise ConfigError(f"{variable}={redact_url(url)!r}: {exc}") from exc


def build_tts(settings: Settings) -> TTS | None:
    choice = settings.resolved_tts()
    if choice == "none":
        return None
    if choice == "offline":
        return _local_voice(settings)
    from voiceagent.tts.cartesia import CartesiaConfig, CartesiaTTS

    config = CartesiaConfig(
        api_key=settings.cartesia_api_key,
        voice_id=settings.cartesia_voice_id,
        url=settings.cartesia_websocket_url,
        api_version=settings.cartesia_api_version,
        model_id=settings.cartesia_model_id,
        language=settings.language,
        first_audio_timeout_s=settings.cartesia_first_audio_timeout_s,
    )
    try:
        cartesia = CartesiaTTS(config.validate())
    except ValueError as exc:
        raise ConfigError(f"Cartesia settings: {exc}") from exc
    if not settings.tts_fallback:
        return cartesia
    try:
        fallback = _local_voice(settings)
    except ProviderUnavailable as exc:
        log.warning("no local fallback voice: %s", exc)
        return cartesia
    from voiceagent.tts.fallback import FallbackTTS

    return FallbackTTS(cartesia, fallback, primary_cooldown_s=settings.tts_fallback_cooldown_s)


def _local_voice(settings: Settings) -> TTS:
    from voiceagent.speech.availability import OfflineEnginesMissing, check_offline_engines

    try:
        check_offline_engines().require_voice()
    except OfflineEnginesMissing as exc:
        raise ProviderUnavailable(str(exc)) from exc
    from voiceagent.tts.local import LocalVoiceConfig, LocalVoiceTTS

    return LocalVoiceTTS(LocalVoiceConfig(language=settings.language))
