"""Lines of the server's own, said as responses: a guardrail's safe line, the budget
goodbye, the check-in of an away user (away.py).

A line is a response like any other (`response_start`, `text_done`, audio,
`response_done`, history) in the current epoch, voiced by the session's TTS in turn
after the responses before it; without a TTS it is text only. It never reaches the
model. An uninterruptible line plays through the user's speech (interruptions.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from voiceagent.conversation import ConversationItem
from voiceagent.protocol import event
from voiceagent.session.room import Room
from voiceagent.session.speaker import Speaker
from voiceagent.session.turns import Response

# The away check-in, by language (the base of
# VOICEAGENT_LANGUAGE; English otherwise).
CHECK_IN = {"en": "Are you still there?", "vi": "Bạn vẫn còn ở đó chứ?"}


def localised(lines: dict[str, str], language: str) -> str:
    return lines.get(language.split("-")[0].lower(), lines["en"])


async def say_line(
    room: Room,
    speaker: Speaker,
    response_id: str,
    agent: str,
    line: str,
    finish: Callable[[Response], Awaitable[None]],
    uninterruptible: bool = False,
) -> None:
    """Say `line` as response `response_id` of `agent`; `finish` runs when it is done."""
    said = room.turns.begin(response_id, agent)
    room.outbox.begin_epoch(room.turns.epoch)
    said.model_done = True
    said.text = line
    said.uninterruptible = uninterruptible
    item_id = f"item_{response_id}"
    await room.put(event("response_start", response_id=response_id, agent=agent))
    await room.put(event("text_done", response_id=response_id, item_id=item_id, text=line))
    room.history.put(ConversationItem(item_id, "assistant", text=line, agent=agent))
    if speaker.enabled:
        speaker.say(said, line, finish)
    else:
        said.speech_done = True
    await room.put(event("response_done", response_id=response_id, status="completed"))
    if not speaker.enabled:
        await finish(said)
