"""The pipeline file: its schema (settings models with every default), the YAML loader with line numbers, checks across keys."""
