"""The MCP server: each index of a project as a search tool for MCP clients, plus file tools and
``ask``, over either the server's own services (``/mcp``) or the HTTP API (``indexchat mcp``)."""
