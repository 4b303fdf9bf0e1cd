"""Droppable traffic a slow client misses is counted, and /metrics shows it."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from trio_websocket import open_websocket_url

from tests.conftest import eventually, make_services, running_app
from tests.session.helpers import front_desk
from voiceagent.config import Settings
from voiceagent.models.scripted import ScriptedModel, ScriptedReply
from voiceagent.tts.scripted import ScriptedTTS

LONG_REPLY = " ".join(f"word{i}" for i in range(600))


async def droppable_out_drops(client: httpx.AsyncClient, address: str) -> float:
    body = (await client.get(f"http://{address}/metrics")).text
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == "voiceagent_drops_total" and sample.labels == {
                "class": "droppable_out"
            }:
                return sample.value
    return 0.0


async def test_a_slow_reader_makes_droppable_out_drops_show_in_metrics() -> None:
    model = ScriptedModel(default=ScriptedReply(LONG_REPLY))
    settings = Settings(
        ws_outgoing_max=16, ws_send_timeout_s=0.5, ws_tts_chunk_bytes=480, ws_write_timeout_s=1.5
    )
    services = make_services(model, ScriptedTTS(), agent=front_desk, settings=settings)
    async with running_app(services) as address, httpx.AsyncClient() as http:
        before = await droppable_out_drops(http, address)
        async with open_websocket_url(f"ws://{address}/ws/slow", message_queue_size=0) as ws:
            await ws.send_message('{"type":"text","text":"flood me"}')
            # Never read: text deltas pile up and are dropped, then the session gives up.
            await eventually(lambda: services.registry.get("slow") is not None, within=5)
            await eventually(lambda: len(services.registry) == 0, within=15)
        after = await droppable_out_drops(http, address)
    assert after > before
