"""The offline demo brain: a deterministic dialogue policy for any agent graph.

`OfflineBrain` is not a language model. It reads what the graph declares (tool names,
descriptions, parameter schemas, example phrases) from the `AgentSetup` it is given,
matches the caller's words against it and fills arguments from speech. One brain
serves one conversation; the offline model makes one per connection from the factory
it is given (`OfflineModel(brain_factory=OfflineBrain)`).

Modules: `policy` (the dialogue rules), `matching` (which tool a request asks for),
`slots` (arguments out of an utterance), `spoken` (numbers and codes as people say
them). It depends only on `voiceagent.conversation`, `voiceagent.handoffs` and
`voiceagent.stems`, never on the graph or the models, so a model can be given any brain
and the graph can be used without this one.
"""

from voiceagent.brain.policy import OfflineBrain

__all__ = ["OfflineBrain"]
