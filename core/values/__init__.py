"""The value objects and component Protocols behind ``ftp.types``, one module per phase; plugins import
them from ``ftp.types``, which re-exports every public name."""
