"""voiceagent: a realtime voice-agent server toolkit on Trio."""
