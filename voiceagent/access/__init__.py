"""Who may open a room, and how much a room may take: tokens, origins, limits.

Pure code and small in-process state; `voiceagent.app` applies it at the handshake and
the session applies the per-room limits. Shared state (concurrent rooms per user or per
address) sits behind `SlotCounter`, so a deployment can swap the in-process counter for
a shared one.
"""
