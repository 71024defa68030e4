"""The web page: sign-in, chat and indexes, served by the API server from templates and static files."""
