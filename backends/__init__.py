"""Built-in backends. Each is an ordinary plugin; the core never imports one directly."""
