"""A resume reads only the newest items of a room, in conversation order."""

from __future__ import annotations

from tests.store.conftest import backend_for
from voiceagent.store.records import ConnectionOpened, ItemFinal


def item(connection: str, seq: int, at: float) -> ItemFinal:
    return ItemFinal(
        session_id="long-room",
        connection_id=connection,
        seq=seq,
        at=at,
        item_id=f"item_{seq}",
        role="user",
        type="message",
        text=f"{connection} {seq}",
        status="completed",
    )


def test_the_newest_items_come_in_conversation_order(database: dict[str, str]) -> None:
    backend = backend_for(database)
    backend.migrate()
    # Two connections to one room; the second one's items were written first.
    opened = [
        ConnectionOpened("long-room", connection, started, None, "Front Desk", "x", "y")
        for connection, started in (("c1", 100.0), ("c2", 200.0))
    ]
    later = [item("c2", seq, 200.0 + seq) for seq in range(3)]
    earlier = [item("c1", seq, 100.0 + seq) for seq in range(4)]
    backend.write([*opened, *later, *earlier])
    everything = [record.text for record in backend.items("long-room")]
    assert everything == ["c1 0", "c1 1", "c1 2", "c1 3", "c2 0", "c2 1", "c2 2"]
    newest = [record.text for record in backend.items("long-room", newest=4)]
    assert newest == everything[-4:]
    assert backend.items("long-room", newest=100) == backend.items("long-room")
    backend.close()
