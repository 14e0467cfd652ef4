"""ftp serve: an OpenAI-compatible HTTP API over the deployed versions (being written)."""
