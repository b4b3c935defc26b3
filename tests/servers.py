"""Settings shared by every test that starts a Temporal server of its own."""

from __future__ import annotations

from datetime import timedelta

# The SDK waits 5 s for a dev or test server to answer by default; on a loaded 2-core
# machine (CI running beside other processes) a start can take longer, and failing then
# would say nothing about the code under test.
SERVER_STARTUP = timedelta(seconds=60)
