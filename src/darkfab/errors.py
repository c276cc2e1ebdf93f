"""Every error darkfab raises on purpose derives from :class:`DarkfabError`.

The tree::

    DarkfabError
    ├── SpecError (ValueError)            a factory file or option is wrong; names file, field, value, fix
    ├── DataError (ValueError)            the data cannot be used as declared; names column, rule, fix
    ├── StoreError                        the store cannot be opened, migrated or written
    │   ├── NotFoundError (LookupError)   a factory, campaign, trial or model version that does not exist
    │   └── StoreUnavailable              the store is out (down, unreachable, locked) past the wait: try later
    │       └── TransactionCut            (internal to ``darkfab.store``) a connection cut mid-transaction:
    │                                     rolled back, and the store runs the work again from the start
    ├── IntegrityError                    an artifact's content hash or the event chain does not verify
    ├── TrialError                        a trial could not be run (raised inside executors and trainers)
    │   ├── TrialPruned                   a trial was stopped early by the pruner (not a failure)
    │   └── SandboxError                  the sandboxed child failed or answered what the worker refuses
    │                                     (``darkfab.execute``)
    ├── ExecutorError                     the executor itself broke (not one trial)
    ├── PausedError                       a person paused the factory: nothing new starts until it is resumed
    ├── ScriptError (ValueError)          a training script or an edit to it breaks the script contract
    │                                     (``darkfab.train``)
    ├── UntrustedCodeError (PermissionError)  loading a script model would run its code in a process that
    │                                     has not opted in (``darkfab.train``)
    └── ServeError                        a request the model server refuses; carries its HTTP status
        │                                 (``darkfab.serve``)
        ├── InputError (ValueError)       a row the model cannot take (422)
        │   └── OutOfRange                a finite value beyond what the model can compute with (422)
        ├── BadRequest (ValueError)       a body that is not the protocol's JSON (400)
        ├── Forbidden                     a foreign Origin: a web page, not a client (403)
        ├── MisdirectedHost               a foreign Host header: DNS rebinding (421)
        ├── UnsupportedMediaType          a body that is not application/json (415)
        ├── Unauthorized                  no or a wrong bearer token (401)
        ├── ModelNotFound (LookupError)   no such model or version (404)
        ├── Conflict                      a second, different label for one request; nothing to roll back to (409)
        ├── PayloadTooLarge               a body over the limit (413)
        ├── Unavailable                   the model or the store is not ready (503)
        └── ModelFailed                   the model raised on valid input (500, counted against the model)

The classes outside this module live beside the code that raises them, so that this module imports nothing.

Command-line exit codes: 2 for ``SpecError`` and ``DataError`` (the user's input), 1 for the rest.
"""

from __future__ import annotations


class DarkfabError(Exception):
    """Root of every error darkfab raises on purpose."""


class SpecError(DarkfabError, ValueError):
    """A factory file, or an option that overrides it, breaks a rule.

    The message names the file, the field path, the value, the rule and the fix.
    """


class DataError(DarkfabError, ValueError):
    """The data cannot be used as the factory declares it."""


class StoreError(DarkfabError):
    """The store cannot be opened, migrated or written."""


class NotFoundError(StoreError, LookupError):
    """A record that was asked for does not exist."""


class StoreUnavailable(StoreError):
    """The store was out (down, unreachable, its connection cut, locked by another writer) longer than the store
    waits, or went away in the middle of a transaction, which was rolled back: the same work may be tried again."""


class IntegrityError(DarkfabError):
    """An artifact's content hash, or the event log's hash chain, does not verify."""


class TrialError(DarkfabError):
    """A trial could not be completed."""


class TrialPruned(TrialError):
    """A trial was stopped early because its intermediate scores were weak."""


class ExecutorError(DarkfabError):
    """The executor itself failed, not one trial."""


class PausedError(DarkfabError):
    """The factory is paused (``darkfab pause-factory``): no campaign or trial starts until ``darkfab resume-factory``."""


__all__ = [
    "DarkfabError",
    "DataError",
    "ExecutorError",
    "IntegrityError",
    "NotFoundError",
    "PausedError",
    "SpecError",
    "StoreError",
    "StoreUnavailable",
    "TrialError",
    "TrialPruned",
]
