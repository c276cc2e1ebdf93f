"""darkfab: a lights-out model factory."""

from __future__ import annotations

__version__ = "0.1.0"
