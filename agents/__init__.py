"""Demo agent graphs, installed as `voiceagent.demo` (see pyproject.toml).

`voiceagent.demo.airline:triage_agent` (this folder's airline.py) is the default
starting agent. Edit the files here in a checkout; an editable install sees the edits.
"""
