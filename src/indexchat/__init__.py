"""indexchat: a self-hosted LlamaCloud Chat API."""

__version__ = "0.1.0"
