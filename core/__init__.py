"""ftp: one fine-tuning pipeline file for local GPUs/CPUs and Azure AI Foundry.

Plugins import ``hookimpl`` from here and the value objects from ``ftp.types``. Nothing heavy is
imported at package import time, so ``ftp --help`` stays instant.
"""

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("ftp")

__all__ = ["__version__", "hookimpl"]
