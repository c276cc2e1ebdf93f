"""Contract suites every implementation of an extension point passes (stores, executors, proposers)."""
