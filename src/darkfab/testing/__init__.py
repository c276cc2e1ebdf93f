"""Contract suites every implementation of an extension point passes (stores, executors, proposers).

``faulty`` holds the misbehaving estimators the executor suite runs (they hang, crash, eat memory).
"""

__all__: list[str] = []  # a package of modules: import the suite you need from its module
