"""Built-in backends. Each is an ordinary plugin; the core never imports one directly, only this list."""

BUILTIN: tuple[str, ...] = (
    "ftp.backends.local",
    "ftp.backends.azure",
)
