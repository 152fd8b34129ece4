"""Wire-level helpers shared by the apiserver and the agent."""
