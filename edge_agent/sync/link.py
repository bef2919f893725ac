"""What the agent knows about its link to the cloud, for the status API and metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = ["CloudLink"]


@dataclass
class CloudLink:
    """Online or not, when the cloud last answered, and how far behind the watch is.

    `online` means the watch stream is open and has delivered something; any answered RPC
    counts as contact.
    """

    online: bool = False
    last_contact_ms: int | None = None
    last_error: str = ""
    cloud_revision: int = 0
    auth_refused: bool = False

    def contact(self) -> None:
        self.last_contact_ms = time.time_ns() // 1_000_000
        self.auth_refused = False

    def stream_up(self) -> None:
        self.online = True
        self.last_error = ""
        self.contact()

    def stream_down(self, error: str) -> None:
        self.online = False
        self.last_error = error

    def saw_revision(self, revision: int) -> None:
        self.cloud_revision = max(self.cloud_revision, revision)

    def lag(self, applied_revision: int) -> int:
        """How many revisions the cache is behind what the cloud last said it had."""
        return max(0, self.cloud_revision - applied_revision)
