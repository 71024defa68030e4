"""Search capabilities: text embeddings and the building blocks of retrieval."""
