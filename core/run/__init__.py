"""A run: the runner that orders steps, the run directory and its state.json, the run lock, progress, the dry-run plan."""
