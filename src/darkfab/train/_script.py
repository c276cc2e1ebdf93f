"""The old name of :mod:`darkfab.train.script`, kept only so that models pickled before the rename still load.

A script model's pickle names the module of :class:`~darkfab.train.script.ScriptEstimator`; artifacts
stored before the module became public name this one. Import from :mod:`darkfab.train.script` instead.
"""

from __future__ import annotations

from .script import ScriptEstimator

__all__ = ["ScriptEstimator"]
