"""How a label the cloud bought from a carrier API is recorded on its parcel row.

A bought label (cloud.shipping.labels_bought) is a document entry {"kind": "shipping_label",
"bought": {"label_id", "adapter", "carrier", "tracking_number", "state", "attempts", "weight_g"}};
its state: bought -> void_pending -> voided | void_declined | void_failed. The parcel ledger marks
them for voiding when the edge voids their parcel; cloud.shipping buys, voids and relabels them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BOUGHT", "VOID_PENDING", "bought_entries", "void_bought_labels"]

BOUGHT = "bought"
VOID_PENDING = "void_pending"


def bought_entries(documents: list[Any]) -> list[dict[str, Any]]:
    """The bought-label entries among a parcel row's documents (the `bought` part of each)."""
    return [d[BOUGHT] for d in documents if isinstance(d, dict) and isinstance(d.get(BOUGHT), dict)]


def void_bought_labels(documents: list[dict[str, Any]]) -> bool:
    """Mark a parcel's bought labels (still `bought`) for voiding at the carrier's API; whether any
    was. The cloud's void loop calls the API, outside any write transaction."""
    marked = False
    for bought in bought_entries(documents):
        if bought.get("state") == BOUGHT:
            bought["state"] = VOID_PENDING
            marked = True
    return marked
