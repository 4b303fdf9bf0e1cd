"""Speech made in the test process with the local voices (no recordings, no downloads)."""

from __future__ import annotations

import pytest

from tests.speech.sounds import QUESTION, silence
from voiceagent.speech.voices import load_voice


@pytest.fixture(scope="session")
def spoken_question() -> bytes:
    """The question in the English voice (piper when installed), 24 kHz PCM16."""
    return load_voice("en").synthesize(QUESTION)


@pytest.fixture(scope="session")
def spoken_turn(spoken_question: bytes) -> bytes:
    """A whole spoken turn: 0.5 s of silence, the question, 1 s of silence."""
    return silence(0.5) + spoken_question + silence(1.0)
