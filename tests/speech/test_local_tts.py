"""The local voice: streams sentence by sentence, stops dead on cancel."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import trio

from voiceagent.speech import voices
from voiceagent.tts.base import TTSError, WordTiming
from voiceagent.tts.local import LocalVoiceConfig, LocalVoiceTTS, SentenceSplitter

BYTES_PER_MS = 48


class Sink:
    """Records what the TTS delivered, and whatever came after the cancel."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.timings: list[WordTiming] = []
        self.first_audio = trio.Event()
        self.after_cancel: list[bytes] = []
        self.cancelled = False

    async def audio(self, pcm: bytes) -> None:
        if self.cancelled:
            self.after_cancel.append(pcm)
        self.chunks.append(pcm)
        self.first_audio.set()

    def words(self, timings: Sequence[WordTiming]) -> None:
        self.timings.extend(timings)


async def speak(tts: LocalVoiceTTS, pieces: list[str]) -> Sink:
    sink = Sink()
    send, receive = trio.open_memory_channel[str](16)
    async with tts.connect() as connection, trio.open_nursery() as nursery:
        nursery.start_soon(lambda: connection.synthesize(receive, sink, response_id="r1"))
        async with send:
            for piece in pieces:
                await send.send(piece)
    return sink


async def test_first_sentence_is_voiced_before_the_text_is_complete() -> None:
    tts = LocalVoiceTTS()
    sink = Sink()
    send, receive = trio.open_memory_channel[str](16)
    async with tts.connect() as connection, trio.open_nursery() as nursery:
        nursery.start_soon(lambda: connection.synthesize(receive, sink, response_id="r1"))
        await send.send("Your flight leaves at nine. ")
        with trio.fail_after(30):
            await sink.first_audio.wait()  # the channel is still open
        await send.send("Gate twelve")
        await send.aclose()
    audio = b"".join(sink.chunks)
    assert len(audio) > 24_000 * 2  # two sentences of speech: well over a second
    assert all(len(chunk) % 2 == 0 for chunk in sink.chunks)
    assert all(len(chunk) <= 100 * BYTES_PER_MS for chunk in sink.chunks)
    # The unfinished rest was flushed when the channel closed.
    assert [t.word for t in sink.timings][-2:] == ["Gate", "twelve"]


async def test_word_timings_cover_the_audio_in_order() -> None:
    sink = await speak(LocalVoiceTTS(), ["One two three. Four five."])
    starts = [t.start for t in sink.timings]
    assert [t.word for t in sink.timings] == ["One", "two", "three.", "Four", "five."]
    assert starts == sorted(starts)
    audio_s = len(b"".join(sink.chunks)) / 48_000
    assert sink.timings[-1].end == pytest.approx(audio_s, rel=0.01)


async def test_no_audio_reaches_the_sink_after_cancel() -> None:
    tts = LocalVoiceTTS()
    sink = Sink()
    send, receive = trio.open_memory_channel[str](16)
    async with tts.connect() as connection:
        async with trio.open_nursery() as nursery:
            scope = trio.CancelScope()

            async def voice() -> None:
                with scope:
                    await connection.synthesize(receive, sink, response_id="r1")

            nursery.start_soon(voice)
            long_text = " ".join(f"This is sentence number {n}." for n in range(12))
            await send.send(long_text)
            with trio.fail_after(30):
                await sink.first_audio.wait()
            sink.cancelled = True
            scope.cancel()
        # Give abandoned synthesis threads time to finish: their audio must be dropped.
        await trio.sleep(0.5)
    assert sink.chunks  # it did speak before the cancel
    assert sink.after_cancel == []
    assert len(b"".join(sink.chunks)) < len(long_text) * 60 * BYTES_PER_MS // 10


async def test_vietnamese_uses_espeak_ng() -> None:
    tts = LocalVoiceTTS(LocalVoiceConfig(language="vi"))
    assert (await tts.voice()).name == "espeak-ng"
    sink = await speak(tts, ["Xin chào. ", "Tôi có thể giúp gì cho bạn?"])
    assert len(b"".join(sink.chunks)) > 24_000  # > 0.5 s of audio


async def test_english_without_piper_falls_back_to_espeak_ng() -> None:
    tts = LocalVoiceTTS(LocalVoiceConfig(prefer_piper=False))
    assert (await tts.voice()).name == "espeak-ng"
    sink = await speak(tts, ["Hello there."])
    assert sink.chunks


async def test_english_falls_back_to_espeak_ng_when_piper_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def piper_not_installed() -> None:
        raise voices.VoiceUnavailable("piper voice not installed")

    monkeypatch.delitem(voices._LOADED, "piper", raising=False)
    monkeypatch.setattr(voices, "PiperVoice", piper_not_installed)
    tts = LocalVoiceTTS()
    assert (await tts.voice()).name == "espeak-ng"
    sink = await speak(tts, ["Hello there."])
    assert sink.chunks


async def test_regional_language_codes_find_their_voice() -> None:
    tts = LocalVoiceTTS(LocalVoiceConfig(language="vi-VN"))
    assert (await tts.voice()).name == "espeak-ng"


async def test_unknown_language_is_a_typed_error() -> None:
    tts = LocalVoiceTTS(LocalVoiceConfig(language="xx-nowhere"))
    with pytest.raises(TTSError) as info:
        await tts.warm_up()
    assert info.value.code == "tts_unavailable"


def test_splitter_hands_out_sentences_as_they_complete() -> None:
    splitter = SentenceSplitter()
    assert splitter.push("Hello the") == []
    assert splitter.push("re. How are") == ["Hello there."]
    assert splitter.push(" you? Fine") == ["How are you?"]
    assert splitter.flush() == "Fine"
    assert splitter.flush() is None


def test_splitter_keeps_decimals_and_cuts_runaway_text() -> None:
    splitter = SentenceSplitter(max_chars=40)
    assert splitter.push("The fare is 12.50 dollars") == []
    pieces = splitter.push(" and " + "very " * 20)
    assert pieces and all(len(piece) <= 40 for piece in pieces)
