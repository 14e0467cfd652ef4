"""Built-in plugins. Each module is registered through the same hooks as a third-party package."""
