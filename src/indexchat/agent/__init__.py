"""The chat agent: language models behind one small interface, the tools it may call, and the
loop that runs one turn (model → tool calls → tool results → … → answer)."""
