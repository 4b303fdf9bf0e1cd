"""The offline speech engines, each behind a small adapter.

- `vad`: server-side voice activity detection (Silero), sans-I/O, runs inline.
- `stt`: speech recognition (pocketsphinx) in worker processes.
- `voices`: the local voices (piper, espeak-ng) as blocking calls for worker threads.
- `turn_detector`, `log_mel`: the semantic end-of-turn model (Smart Turn v3, ONNX, in a
  worker thread) and its features; `turn_end`: when a turn ends (sans-I/O rules).
- `availability`: which optional engines are installed (`pip install -e ".[offline]"`).

Nothing heavy is imported here; each engine loads on first use.
"""
