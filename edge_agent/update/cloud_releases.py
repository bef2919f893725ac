"""The agent's side of the cloud's release endpoints, over HTTP with its agent credential.

Why HTTP and not the gRPC Sync stream: a binary is tens of megabytes (over gRPC's message
limit, and it would stall the change stream behind it), HTTP streams it, and the endpoints
need no change to the sync contract. The agent polls `GET /api/v1/agent/release` every
`update.check_interval_s`; the answer is the release assigned to its warehouse, or 204.
"""

from __future__ import annotations

import httpx

from edge_agent.update.release import Release, UpdateRefused

__all__ = ["CloudReleases", "report_now"]

MAX_BINARY_BYTES = 200 * 1024 * 1024
REPORTS_PATH = "/api/v1/agent/update-reports"


def report_now(base_url: str, credential: str, version: str, outcome: str, message: str = "") -> None:
    """`CloudReleases.report` without an event loop, for the moments between two agents."""
    response = httpx.post(
        f"{base_url}{REPORTS_PATH}",
        headers={"authorization": f"Bearer {credential}"},
        json={"version": version, "outcome": outcome, "message": message[:1000]},
        timeout=30,
    )
    response.raise_for_status()


class CloudReleases:
    """Ask the cloud which release is assigned, download it, report how its install went."""

    def __init__(self, base_url: str, credential: str, *, timeout_s: float = 30.0) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url, headers={"authorization": f"Bearer {credential}"}, timeout=timeout_s
        )

    async def assigned(self) -> Release | None:
        """The release the cloud assigned to this agent's warehouse, if any."""
        response = await self._client.get("/api/v1/agent/release")
        if response.status_code == 204:
            return None
        response.raise_for_status()
        return Release.from_answer(response.json())

    async def download(self, release: Release) -> bytes:
        """The release's bytes, refused early when the cloud sends more than it published."""
        if release.size > MAX_BINARY_BYTES:
            raise UpdateRefused(
                f"release {release.version} is {release.size} bytes, over the {MAX_BINARY_BYTES} limit",
                reason="too_large",
            )
        chunks: list[bytes] = []
        received = 0
        async with self._client.stream("GET", f"/api/v1/agent/release/{release.version}/binary") as response:
            response.raise_for_status()
            async for chunk in response.aiter_bytes():
                received += len(chunk)
                if received > release.size:
                    raise UpdateRefused(
                        f"release {release.version} sent more than its published {release.size} bytes: "
                        "it was not installed",
                        reason="bad_checksum",
                    )
                chunks.append(chunk)
        return b"".join(chunks)

    async def report(self, version: str, outcome: str, message: str = "") -> None:
        """Tell the cloud how an update went (installed, refused, rolled_back)."""
        response = await self._client.post(
            REPORTS_PATH, json={"version": version, "outcome": outcome, "message": message[:1000]}
        )
        response.raise_for_status()

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self._client.aclose()
