"""Protocol-faithful local servers for the Azure OpenAI Realtime and Cartesia APIs.

They are real WebSocket servers on 127.0.0.1 used by the tests, the benchmarks and
users' own tests: `python -m voiceagent.emulators realtime|cartesia --port N`.
"""
