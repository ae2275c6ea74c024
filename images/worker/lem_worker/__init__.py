"""lem in-container worker: runs one measured experiment and writes result.json."""
from __future__ import annotations

__version__ = "0.2.0"
