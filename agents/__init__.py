"""Example agent graphs. `agents.airline:triage_agent` is the default starting agent."""
