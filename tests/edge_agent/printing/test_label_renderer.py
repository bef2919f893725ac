"""The carrier labels' worker process: same bytes as in-process, a time limit, a replaced worker.

Real processes (multiprocessing's spawn, as the agent runs it), real PDFium: a PDF of forms
nested seven deep (PDFium takes seconds to load it) is stopped at the time limit and the label
queued behind it prints; a worker killed between labels or under one is replaced; the loop keeps
serving while a label is drawn. The helpers the worker runs below are module-level so that the
worker can import them by name.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockside.errors import InputError
from edge_agent.devices.config import PrinterConfig
from edge_agent.devices.printer_lane import PrinterLane
from edge_agent.devices.zpl import ZplPrinter
from edge_agent.packing.documents import PrinterPaper, carrier_label_printout
from edge_agent.packing.labelling import Labeller
from edge_agent.printing.label_renderer import LabelRenderer, RendererUnavailable
from edge_agent.store.cache import Cache
from edge_agent.store.database import Store
from edge_agent.store.outbox import Outbox
from tests.dockside.labels.carrier_fixtures import (
    document,
    encrypted_pdf,
    label_pdf,
    label_png,
    pdf_with_huge_image,
    pdf_with_nested_forms,
    png_bomb,
)

ZPL_PAPER = PrinterPaper("zpl", 203, 812, 1218)
ESCPOS_PAPER = PrinterPaper("escpos", 203, 576, None)
LIMIT_S = 1.0
PRELOAD = (carrier_label_printout.__module__, __name__)  # and the helpers below
WAIT_S = 30.0


# -- what the worker runs in the tests (besides carrier_label_printout) ------------------------


def kill_myself() -> bytes:
    os.kill(os.getpid(), signal.SIGKILL)
    return b"unreachable"


def wait_for_file(path: str) -> bytes:
    """b"seen" once `path` exists (made by the test's event loop), b"not seen" after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return b"seen"
        time.sleep(0.005)
    return b"not seen"


def address_space_limit() -> bytes:
    import resource

    return str(resource.getrlimit(resource.RLIMIT_AS)[0]).encode()


def allocate(size: int) -> bytes:
    return bytes(bytearray(size)[:1])


def broken() -> bytes:
    raise RuntimeError("pdfium fell over")


# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def renderer() -> Iterator[LabelRenderer]:
    """One worker for the module's tests, as an agent keeps one (each test leaves it working)."""
    made = LabelRenderer(time_limit_s=LIMIT_S, preload=PRELOAD)
    yield made
    asyncio.run(made.close())


def _render(renderer: LabelRenderer, fmt: str, data: bytes, paper: PrinterPaper = ZPL_PAPER) -> bytes:
    what = f"parcel 2's carrier label ({fmt.upper()})"
    return asyncio.run(
        renderer.render(what, carrier_label_printout, document(fmt, data), paper, parcel=2, printer="P-1")
    )


def _running(renderer: LabelRenderer) -> bool:
    return renderer.pid is not None


def test_a_label_drawn_by_the_worker_is_the_in_process_conversion_byte_for_byte(
    renderer: LabelRenderer,
) -> None:
    for fmt, data, paper in (
        ("pdf", label_pdf(), ZPL_PAPER),
        ("pdf", label_pdf(), ESCPOS_PAPER),
        ("png", label_png(), ZPL_PAPER),
    ):
        expected = carrier_label_printout(document(fmt, data), paper, parcel=2, printer="P-1")
        assert _render(renderer, fmt, data, paper) == expected
    assert renderer.pid is not None
    assert renderer.pid != os.getpid()


@pytest.mark.parametrize(
    ("fmt", "data"),
    [
        ("pdf", b"<html>label</html>"),
        ("pdf", encrypted_pdf()),
        ("pdf", pdf_with_huge_image()),
        ("png", png_bomb()),
    ],
)
def test_hostile_labels_get_the_same_clear_errors_from_the_worker(
    renderer: LabelRenderer, fmt: str, data: bytes
) -> None:
    with pytest.raises(InputError) as in_process:
        carrier_label_printout(document(fmt, data), ZPL_PAPER, parcel=2, printer="P-1")
    pid = renderer.pid
    with pytest.raises(InputError) as from_worker:
        _render(renderer, fmt, data)
    assert (from_worker.value.code, from_worker.value.message) == (
        in_process.value.code,
        in_process.value.message,
    )
    assert from_worker.value.message.startswith(f"parcel 2's carrier label ({fmt.upper()})")
    assert pid is None or renderer.pid == pid  # refusing a label costs no worker


def test_a_nested_forms_pdf_is_stopped_at_the_limit_and_the_label_behind_it_prints(
    renderer: LabelRenderer,
) -> None:
    hostile = document("pdf", pdf_with_nested_forms())
    normal = document("pdf", label_pdf())
    expected = carrier_label_printout(normal, ZPL_PAPER, parcel=3)

    async def scenario() -> tuple[BaseException | bytes, bytes, float]:
        first = asyncio.create_task(
            renderer.render(
                "parcel 1's carrier label (PDF)", carrier_label_printout, hostile, ZPL_PAPER, parcel=1
            )
        )
        await asyncio.sleep(0)  # the hostile label is first in the queue
        started = time.perf_counter()
        second = await renderer.render(
            "parcel 3's carrier label (PDF)", carrier_label_printout, normal, ZPL_PAPER, parcel=3
        )
        waited = time.perf_counter() - started
        outcome = await asyncio.gather(first, return_exceptions=True)
        return outcome[0], second, waited

    before = renderer.replaced
    hostile_outcome, second, waited = asyncio.run(scenario())
    assert isinstance(hostile_outcome, InputError)
    assert hostile_outcome.code == "label_render_timeout"
    assert hostile_outcome.message.startswith("parcel 1's carrier label (PDF) took longer than 1 s")
    assert "ask the OMS for a flat PDF or for ZPL" in hostile_outcome.message
    assert second == expected
    assert renderer.replaced == before + 1
    print(f"the label queued behind the nested-forms PDF waited {waited:.2f} s (limit {LIMIT_S} s)")


def test_a_worker_killed_between_labels_or_under_one_is_replaced(renderer: LabelRenderer) -> None:
    _render(renderer, "pdf", label_pdf())
    worker = renderer._worker
    assert worker is not None
    pid = worker.process.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    worker.process.join(WAIT_S)  # dead before the next label comes (not while it is sent)
    assert _render(renderer, "pdf", label_pdf()) == carrier_label_printout(
        document("pdf", label_pdf()), ZPL_PAPER, parcel=2, printer="P-1"
    )
    assert renderer.pid not in (None, pid)
    with pytest.raises(InputError) as caught:
        asyncio.run(renderer.render("parcel 4's carrier label (PDF)", kill_myself))
    assert caught.value.code == "label_render_failed"
    assert caught.value.message.startswith("parcel 4's carrier label (PDF) could not be drawn")
    assert "killed by signal 9" in caught.value.message
    _render(renderer, "png", label_png())  # and the next one prints


def test_an_error_that_is_not_the_labels_own_is_still_a_clear_input_error(renderer: LabelRenderer) -> None:
    with pytest.raises(InputError) as caught:
        asyncio.run(renderer.render("parcel 5's carrier label (PDF)", broken))
    assert caught.value.code == "carrier_label_unprintable"
    assert "RuntimeError" in caught.value.message


def test_the_loop_keeps_serving_while_the_worker_draws(renderer: LabelRenderer, tmp_path: Path) -> None:
    """The worker's label finishes only once the loop has run a callback scheduled after it began:
    were the loop waiting on the worker, the file would never appear and the label would overrun."""
    flag = tmp_path / "loop-ran"

    async def scenario() -> bytes:
        loop = asyncio.get_running_loop()
        rendering = asyncio.create_task(renderer.render("a label", wait_for_file, str(flag)))
        await asyncio.sleep(0.01)
        loop.call_soon(flag.touch)
        return await rendering

    assert asyncio.run(scenario()) == b"seen"


def test_the_worker_runs_under_its_memory_limit(renderer: LabelRenderer) -> None:
    assert asyncio.run(renderer.render("a label", address_space_limit)) == str(renderer.memory_limit).encode()
    with pytest.raises(InputError) as caught:
        asyncio.run(renderer.render("parcel 6's carrier label (PNG)", allocate, 2 * 2**30))
    assert caught.value.code == "label_render_failed"
    assert "more memory than a label may use" in caught.value.message


def test_the_labeller_starts_its_worker_at_the_first_pdf_label_and_stops_it_on_close(store: Store) -> None:
    config = PrinterConfig(id="Z-1", language="zpl", host="127.0.0.1", role="label")
    lane = PrinterLane(config, ZplPrinter(config))
    labeller = Labeller(store, Cache(store), Outbox(store), warehouse="WH1", carrier_label_limit_s=3)
    assert labeller.renderer.time_limit_s == 3

    async def scenario() -> None:
        zpl = b"^XA^FO20,20^FDlabel^FS^XZ"
        assert await labeller.carrier_label_bytes(lane, document("zpl", zpl), parcel=1) == zpl
        assert not _running(labeller.renderer)  # ZPL is checked, not drawn: no worker
        await labeller.warm_up()  # an order with a PDF label has come: the worker starts
        started = labeller.renderer.pid
        assert started is not None
        pdf = document("pdf", label_pdf())
        data = await labeller.carrier_label_bytes(lane, pdf, parcel=1)
        assert data == carrier_label_printout(pdf, ZPL_PAPER, parcel=1, printer="Z-1")
        assert labeller.renderer.pid == started  # the warm worker drew it
        worker = labeller.renderer._worker
        assert worker is not None
        await labeller.close()
        assert not _running(labeller.renderer)
        assert worker.process.exitcode == 0  # it was asked to stop, not killed
        with pytest.raises(RendererUnavailable):
            await labeller.carrier_label_bytes(lane, pdf, parcel=1)

    try:
        asyncio.run(scenario())
    finally:
        lane.close()
