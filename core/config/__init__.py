"""The pipeline file: its schema (settings models with every default), the YAML loader with line numbers, checks across keys."""

DEFAULT_BACKEND = "local"  # what ``--backend`` means when a command is not given one; the one backend name the core knows
