"""Tests of the agent graph, tool execution, guardrails and the offline brain."""
