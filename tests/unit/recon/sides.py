"""Test helpers: documents put into an in-memory read-back store through its own refresh."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from revbridge.engine.ports import (
    ArDocument,
    JournalDocument,
    PaymentDocument,
    ReadbackKind,
    ReadPage,
)
from revbridge.recon.readback import ReadbackStore, Side

NOW = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
Document = ArDocument | PaymentDocument | JournalDocument


class ListReader:
    """A side holding ``documents``, read in pages in list order (the mark is the index)."""

    def __init__(self, documents: Sequence[Document] = ()) -> None:
        self.documents = list(documents)
        self.reads = 0

    def add(self, *documents: Document) -> None:
        self.documents.extend(documents)

    async def read(self, kind: ReadbackKind, after: str | None, limit: int) -> ReadPage:
        self.reads += 1
        wanted = {
            ReadbackKind.AR: ArDocument,
            ReadbackKind.PAYMENTS: PaymentDocument,
            ReadbackKind.JOURNALS: JournalDocument,
        }[kind]
        start = int(after) if after else 0
        tail = [(i, d) for i, d in enumerate(self.documents) if i >= start]
        page = [(i, d) for i, d in tail if isinstance(d, wanted)][:limit]
        if not page:
            return ReadPage(documents=(), mark=after)
        return ReadPage(documents=tuple(d for _, d in page), mark=str(page[-1][0] + 1))


def store_of(sf: Sequence[Document], erp: Sequence[Document]) -> ReadbackStore:
    """An in-memory store holding ``sf`` and ``erp`` as read back."""
    import asyncio

    store = ReadbackStore()
    sides: tuple[tuple[Side, Sequence[Document]], ...] = (("sf", sf), ("erp", erp))
    for side, docs in sides:
        asyncio.run(store.refresh(side, ListReader(docs), now=NOW, page_size=7))
    return store
