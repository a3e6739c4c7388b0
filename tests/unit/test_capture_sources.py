"""Which ERP adapters the hub captures from, and under which stream: asked of the adapter
(it has ``capture_changes``), never of a list of system names."""

from __future__ import annotations

import asyncio
from typing import Any

from revbridge.engine.ports import Capabilities
from revbridge.services.capture import source_for, stream_of
from revbridge.testing import FakeErp
from revbridge.tryton.adapter import TrytonErp
from revbridge.tryton.rpc import TrytonClient


class _NewErp:
    """An ERP adapter the hub has never heard of, that can be captured."""

    capabilities = Capabilities(name="sap")

    def __init__(self) -> None:
        self.asked: list[tuple[str | None, bool]] = []

    async def capture_changes(
        self, watermark: str | None, *, with_master: bool = False
    ) -> tuple[list[dict[str, Any]], str]:
        self.asked.append((watermark, with_master))
        return [], "7"


class _NoCapture:
    capabilities = Capabilities(name="write-only")


def test_a_new_adapter_with_a_capture_is_captured_under_its_own_name() -> None:
    """No edit in the capture service: the adapter's capture is read, master values asked."""
    erp = _NewErp()
    source = source_for(erp)  # type: ignore[arg-type]
    assert source is not None
    assert stream_of(source) == "erp:sap"
    assert asyncio.run(source.changes("6")) == ([], "7")
    assert erp.asked == [("6", True)]


def test_an_adapter_without_a_capture_has_no_source() -> None:
    assert source_for(_NoCapture()) is None  # type: ignore[arg-type]


def test_the_shipped_adapters_keep_their_streams() -> None:
    """The fake ERP and Tryton are captured as before (their watermarks keep their names)."""
    fake = source_for(FakeErp())
    assert fake is not None
    assert stream_of(fake) == "erp:fake-erp"
    tryton = TrytonErp(TrytonClient("http://127.0.0.1:1", "db", "u", "p"))
    try:
        source = source_for(tryton)
        assert source is not None
        assert stream_of(source) == "erp:tryton"
    finally:
        asyncio.run(tryton.close())
