"""Built-in plugins. Each module is registered through the same hooks as a third-party package."""

# The modules the plugin manager registers, in this order (which is also the order data checks report in).
BUILTIN: tuple[str, ...] = (
    "ftp.plugins.hygiene",
    "ftp.plugins.chat_format",
    "ftp.plugins.quantity",
    "ftp.plugins.length",
    "ftp.plugins.provenance",
    "ftp.plugins.leakage",
    "ftp.plugins.pii",
    "ftp.plugins.duplicates",
    "ftp.plugins.phrasing",
    "ftp.plugins.output_format",
    "ftp.plugins.split",
    "ftp.plugins.loss_curve",
    "ftp.plugins.samples",
    "ftp.plugins.metrics",
    "ftp.plugins.text_metrics",
    "ftp.plugins.classification_metrics",
    "ftp.plugins.extraction_metrics",
    "ftp.plugins.format_metrics",
    "ftp.plugins.judge",
    "ftp.plugins.compare",
    "ftp.plugins.gate",
    "ftp.plugins.registry_sqlite",
    "ftp.plugins.registry_mlflow",
    "ftp.plugins.deploy_local",
)
