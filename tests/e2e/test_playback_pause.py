"""The playback worklet pauses and resumes (`playback_pause` / `playback_resume`).

Rendered offline in Chromium, like tests/e2e/test_audio_dsp.py (its page and render
helper): while paused nothing sounds, and after the resume the response plays on from
the very sample it paused at, so every sample is played exactly once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.e2e.browser import browser_skip_reason
from tests.e2e.test_audio_dsp import (  # noqa: F401  (fixtures)
    QUANTUM_S,
    RENDER_PLAYBACK,
    one_response,
    page,
    reply_tone,
    static_origin,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(browser_skip_reason() is not None, reason=browser_skip_reason() or ""),
]


def test_pause_holds_playback_and_resume_plays_every_sample_once(page: Any) -> None:  # noqa: F811
    pcm = reply_tone(0.4)
    pause_at = 40 * QUANTUM_S  # ~0.1 s into the response
    resume_at = 190 * QUANTUM_S  # ~0.5 s
    steps = [
        [QUANTUM_S, one_response(pcm)],
        [pause_at, [{"type": "pause"}]],
        [resume_at, [{"type": "resume"}]],
    ]
    result = page.evaluate(RENDER_PLAYBACK, steps)
    out = np.abs(np.array(result["out"]))
    # Silent while paused (after the one faded quantum), sounding again after resume.
    held = out[int(pause_at * 48_000) + 128 : int(resume_at * 48_000)]
    assert held.max() == 0.0, "audio while paused"
    assert out[int(resume_at * 48_000) :].max() > 0.2
    # Every sample played exactly once: the response ends having played all 400 ms.
    messages = result["messages"]
    ended = [m for m in messages if m["type"] == "ended"]
    assert ended == [{"type": "ended", "rid": "resp_1", "playedMs": 400}]
    statuses = [m for m in messages if m["type"] == "status"]
    assert statuses[-1]["playedSamples"] == len(pcm)
    assert (statuses[-1]["pauses"], statuses[-1]["resumes"]) == (1, 1)
    assert any(m["paused"] for m in statuses)
    # From first to last sound: the response's 0.4 s plus the pause, nothing more.
    audible = np.flatnonzero(out > 0.01)
    span = (audible[-1] - audible[0]) / 48_000
    assert span == pytest.approx(0.4 + resume_at - pause_at, abs=0.01)


def test_a_flush_while_paused_drops_the_held_audio(page: Any) -> None:  # noqa: F811
    pause_at = 40 * QUANTUM_S
    flush_at = 100 * QUANTUM_S
    steps = [
        [QUANTUM_S, one_response(reply_tone(0.4))],
        [pause_at, [{"type": "pause"}]],
        [flush_at, [{"type": "flush"}]],
    ]
    result = page.evaluate(RENDER_PLAYBACK, steps)
    out = np.abs(np.array(result["out"]))
    assert out[int(pause_at * 48_000) + 128 :].max() == 0.0
    flushed = [m for m in result["messages"] if m["type"] == "flushed"]
    assert len(flushed) == 1 and flushed[0]["rid"] == "resp_1"
    assert flushed[0]["playedMs"] == pytest.approx(1000 * (pause_at - QUANTUM_S), abs=10)
    assert not [m for m in result["messages"] if m["type"] == "ended"]
