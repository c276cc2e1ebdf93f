from __future__ import annotations

import pytest

# the contract's asserts explain their failures like a test module's own
pytest.register_assert_rewrite("darkfab.testing.proposer_contract")
