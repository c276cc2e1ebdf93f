"""The `darkfab` command line: one module per group of commands, each declaring its commands on a
:class:`Commands` (``_common.py``), which runs every one inside the one error guard; ``_app.py`` assembles them.

| module | commands |
|---|---|
| ``run.py`` | run, worker (``lifecycle.py``, ``demo.py``: the loop after a run; ``_progress.py``: what it shows) |
| ``factory_file.py`` | init, schema |
| ``records.py`` | status, trials, models, lineage, predict |
| ``maintenance.py`` | audit verify, audit export, db upgrade |
| ``serve.py`` | serve, promote, rollback, pause, resume |
| ``monitor.py`` | monitor |
| ``proposals.py`` | proposals |
| ``teach.py`` | judge, prefer, compare, reward |
| ``ui.py`` | ui |
| ``export.py`` | export mlflow, export docker, export kserve |
| ``levers.py`` | approve, reject, pause-factory, resume-factory |
"""

from __future__ import annotations

from ._app import app, main

__all__ = ["app", "main"]
