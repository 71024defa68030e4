"""The web page: sign-in, chat and indexes; templates and static files the server serves."""
