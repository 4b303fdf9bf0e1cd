"""The Cartesia emulator's tone voice: deterministic audio, kept tones, bounded memory."""

from __future__ import annotations

import numpy as np
import pytest
import trio

from voiceagent.emulators import cartesia_audio
from voiceagent.emulators.cartesia_audio import ToneVoice

ANSWER = "Sure. One carry-on and one checked bag are included."


async def test_a_known_text_renders_the_same_audio_as_a_fresh_voice() -> None:
    voice = ToneVoice()
    first = await voice.render(ANSWER, 24_000)
    again = await voice.render(ANSWER, 24_000)
    fresh = ToneVoice().render_sync(ANSWER, 24_000)
    assert np.array_equal(first.samples, fresh.samples)
    assert np.array_equal(again.samples, fresh.samples)
    assert again.start == fresh.start and again.end == fresh.end
    assert again.words == ANSWER.split()
    # Each word is a tone at its place; the gaps between words are silent.
    a, b = round(fresh.end[0] * 24_000) + 10, round(fresh.start[1] * 24_000) - 10
    assert not fresh.samples[a:b].any() and fresh.samples.any()


async def test_renderings_do_not_share_writable_audio() -> None:
    voice = ToneVoice()
    first = await voice.render("hello hello", 24_000)
    first.samples[:] = 0  # a consumer may change its copy in place
    again = await voice.render("hello hello", 24_000)
    assert np.array_equal(again.samples, ToneVoice().render_sync("hello hello", 24_000).samples)


async def test_only_new_long_audio_leaves_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    threaded: list[str] = []
    real_run_sync = trio.to_thread.run_sync

    async def counting_run_sync(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        threaded.append(args[0].words[0] if args else "?")
        return await real_run_sync(fn, *args, **kwargs)

    monkeypatch.setattr(cartesia_audio.trio.to_thread, "run_sync", counting_run_sync)
    voice = ToneVoice()
    long_text = " ".join(f"word{i}" for i in range(40))  # ~17 s of new audio
    await voice.render("short words", 24_000)
    assert threaded == []
    rendered = await voice.render(long_text, 24_000)
    assert threaded == ["word0"]
    again = await voice.render(long_text, 24_000)  # every tone known: stays on the loop
    assert threaded == ["word0"]
    assert np.array_equal(rendered.samples, again.samples)


def test_kept_tones_stay_bounded() -> None:
    voice = ToneVoice()
    for i in range(ToneVoice.MAX_TONES * 2):
        voice.render_sync(f"w{i} w{i}x", 16_000)
    assert len(voice._tones) == ToneVoice.MAX_TONES
