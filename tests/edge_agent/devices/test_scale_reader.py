"""The background scale reader on a real pty MT-SICS scale: stability, freshness, faults, replug."""

from __future__ import annotations

import threading

import pytest

from dockside.errors import ScaleError
from edge_agent.devices import ScaleConfig, ScaleReader
from edge_agent.devices.mt_sics import MtSicsScale
from edge_agent.devices.scale import WeightReading
from edge_agent.devices.scale_reader import UsedWeight
from tests.edge_agent.devices.conftest import PtyScalePeer, Sics, SicsBalance, wait_for


def fast_scale(config: ScaleConfig) -> MtSicsScale:
    return MtSicsScale(config, read_timeout_s=0.2, command_timeout_s=0.5)


@pytest.fixture
def reader(sics: Sics):
    peer, _ = sics
    scale_reader = ScaleReader(
        ScaleConfig(protocol="mt-sics", port=peer.path),
        poll_interval_s=0.01,
        reopen_backoff_s=(0.02, 0.1),
        command_timeout_s=2.0,
        scale_factory=fast_scale,
    )
    scale_reader.start()
    yield scale_reader
    scale_reader.stop()


def test_stable_weight_needs_two_agreeing_stable_readings(reader: ScaleReader, sics: Sics) -> None:
    _, balance = sics
    balance.value = "1.250"
    found = reader.wait_stable(3.0)
    assert found.grams == 1250
    assert found.stable
    assert reader.state == "ok"
    assert reader.stable_weight() is not None


def test_moving_weight_is_not_stable(reader: ScaleReader, sics: Sics) -> None:
    _, balance = sics
    balance.mode = "D"
    balance.value = "0.700"
    wait_for(lambda: (r := reader.latest()) is not None and r.grams == 700, what="a moving reading")
    assert reader.stable_weight() is None
    with pytest.raises(ScaleError) as caught:
        reader.wait_stable(0.2)
    assert caught.value.code == "scale_unstable"
    assert "keep the parcel still" in caught.value.message


def test_readings_that_disagree_are_not_stable(reader: ScaleReader, sics: Sics) -> None:
    _, balance = sics
    values = iter(f"{0.1 * (n % 7):.3f}" for n in range(10**6))
    original = balance.__call__

    def jumpy(command: bytes) -> bytes | None:
        balance.value = next(values)
        return original(command)

    peer, _ = sics
    peer.respond = jumpy
    wait_for(lambda: reader.readings_total > 10, what="readings")
    assert reader.stable_weight() is None


def test_stale_weight_is_not_taken(reader: ScaleReader, sics: Sics) -> None:
    _, balance = sics
    balance.value = "2.000"
    reader.wait_stable(3.0)
    balance.answer = False  # the scale goes quiet: the last weight ages
    wait_for(lambda: reader.state == "not_answering", what="not_answering")
    assert reader.stable_weight(max_age_s=0.05) is None
    with pytest.raises(ScaleError) as caught:
        reader.wait_stable(0.1)
    assert caught.value.code == "scale_not_answering"
    balance.answer = True
    assert reader.wait_stable(3.0).grams == 2000


class AgedScale(MtSicsScale):
    """The pty scale, with every reading stamped 5 s before it came in (a frame that sat in a buffer)."""

    def read(self) -> WeightReading:
        got = super().read()
        return WeightReading(got.grams, got.stable, got.at - 5.0)


def test_freshness_is_measured_from_the_reading(sics: Sics) -> None:
    """A weight's age counts from its reading, not from when the reader stored it or was asked."""
    peer, balance = sics
    balance.value = "1.500"
    aged = ScaleReader(
        ScaleConfig(protocol="mt-sics", port=peer.path),
        poll_interval_s=0.01,
        scale_factory=lambda config: AgedScale(config, read_timeout_s=0.2, command_timeout_s=0.5),
    )
    with aged:
        wait_for(lambda: aged.readings_total >= 3 and aged.state == "ok", what="readings")
        assert aged.stable_weight(max_age_s=1.0) is None  # just read, but 5 s old
        assert aged.parcel_weight(max_age_s=1.0) is None
        found = aged.stable_weight(max_age_s=60.0)
        assert found is not None
        assert found.grams == 1500


@pytest.mark.parametrize(("mode", "code"), [("+", "scale_overload"), ("-", "scale_underload")])
def test_overload_and_underload(reader: ScaleReader, sics: Sics, mode: str, code: str) -> None:
    _, balance = sics
    reader.wait_stable(3.0)
    balance.mode = mode
    wait_for(lambda: reader.state == code.removeprefix("scale_"), what=code)
    assert reader.stable_weight() is None
    with pytest.raises(ScaleError) as caught:
        reader.wait_stable(0.1)
    assert caught.value.code == code


def test_noise_on_the_line_is_survived(reader: ScaleReader, sics: Sics) -> None:
    peer, balance = sics
    balance.value = "0.321"
    reader.wait_stable(3.0)
    for _ in range(20):
        peer.write(b"\x13\xfe\x00noise\r\n~~")
    before = reader.readings_total
    wait_for(lambda: reader.readings_total > before + 5, what="readings after noise")
    assert reader.wait_stable(3.0).grams == 321
    assert reader.state == "ok"


# 10 KB without a frame end (CR or LF): a wrong baud rate, or a scale set to a binary protocol.
NO_FRAME_END = (bytes(b for b in range(256) if b not in b"\r\n") * 41)[:10_240]


def test_ten_kilobytes_without_a_frame_end_are_counted_garbled_and_the_weight_recovers(
    reader: ScaleReader, sics: Sics
) -> None:
    peer, balance = sics
    balance.value = "0.250"
    assert reader.wait_stable(3.0).grams == 250
    answer = peer.respond
    noisy = 3

    def noise_then_answer(command: bytes) -> bytes | None:
        # The scale's next replies each come after 10 KB of noise, then it answers cleanly.
        nonlocal noisy
        reply = answer(command)
        if reply and noisy:
            noisy -= 1
            return NO_FRAME_END + reply
        return reply

    garbled_before = reader.garbled_total
    balance.value = "1.750"
    peer.respond = noise_then_answer
    wait_for(lambda: noisy == 0, what="the noisy replies")
    wait_for(lambda: reader.garbled_total >= garbled_before + 3, what="each noisy reply counted garbled")
    found = reader.wait_stable(3.0)
    assert found.grams == 1750
    assert reader.state == "ok"
    latest = reader.latest()
    assert latest is not None
    assert latest.grams == 1750  # the noise never became a weight


def test_unplug_and_replug_at_the_same_path(reader: ScaleReader, sics: Sics) -> None:
    peer, balance = sics
    balance.value = "1.000"
    reader.wait_stable(3.0)
    peer.unplug()
    wait_for(lambda: reader.state == "unplugged", what="unplugged")
    assert "cable" in reader.message
    assert reader.stable_weight() is None
    with pytest.raises(ScaleError) as caught:
        reader.wait_stable(0.1)
    assert caught.value.code == "scale_not_answering"
    balance.value = "1.500"
    peer.replug()
    assert reader.wait_stable(5.0).grams == 1500
    assert reader.state == "ok"


def test_scale_plugged_in_after_the_agent_started(tmp_path) -> None:
    balance = SicsBalance()
    path = tmp_path / "scale"
    scale_reader = ScaleReader(
        ScaleConfig(protocol="mt-sics", port=str(path)),
        poll_interval_s=0.01,
        reopen_backoff_s=(0.02, 0.05),
        scale_factory=fast_scale,
    )
    scale_reader.start()
    peer = None
    try:
        wait_for(lambda: scale_reader.state == "unplugged", what="unplugged at start")
        peer = PtyScalePeer(tmp_path, balance)
        balance.value = "0.250"
        assert scale_reader.wait_stable(5.0).grams == 250
    finally:
        scale_reader.stop()
        if peer is not None:
            peer.close()


def test_zero_and_tare_go_through_the_reader(reader: ScaleReader, sics: Sics) -> None:
    peer, balance = sics
    reader.wait_stable(3.0)
    reader.zero()
    reader.tare()
    assert b"Z" in peer.commands
    assert b"T" in peer.commands
    balance.zero_reply = "Z I"
    with pytest.raises(ScaleError) as caught:
        reader.zero()
    assert caught.value.code == "scale_busy"
    assert reader.wait_stable(3.0).grams == 0  # still reading after a refused zero


def test_commands_fail_clearly_when_not_running(tmp_path) -> None:
    scale_reader = ScaleReader(ScaleConfig(protocol="mt-sics", port=str(tmp_path / "none")))
    assert scale_reader.state == "stopped"
    with pytest.raises(ScaleError) as caught:
        scale_reader.zero()
    assert caught.value.code == "scale_not_answering"
    with pytest.raises(ScaleError) as caught:
        scale_reader.wait_stable(0.01)
    assert caught.value.code == "scale_not_answering"
    assert scale_reader.latest() is None


def test_stop_releases_the_port(reader: ScaleReader, sics: Sics) -> None:
    reader.wait_stable(3.0)
    reader.stop()
    assert reader.state == "stopped"
    assert reader.stable_weight() is None
    assert reader._thread is None


# -- one weight, one parcel ---------------------------------------------------------------------


def test_a_weight_serves_one_parcel_until_the_scale_shows_a_new_one(reader: ScaleReader, sics: Sics) -> None:
    _, balance = sics
    balance.value = "1.234"
    first = reader.wait_parcel_weight("A-1", 3.0)
    assert first.grams == 1234
    assert reader.used() == UsedWeight(1234, "A-1")

    # The parcel stays on the scale (a drift of a few grams included): never the next order's weight.
    balance.value = "1.236"
    wait_for(lambda: (r := reader.latest()) is not None and r.grams == 1236, what="the drift")
    assert reader.take_parcel_weight("A-2") is None
    with pytest.raises(ScaleError) as used:
        reader.wait_parcel_weight("A-2", 0.2, where="at S1")
    assert used.value.code == "scale_weight_used"
    assert used.value.message.startswith("put the parcel for order A-2 on the scale at S1")
    assert "1,236 g, was already used for order A-1" in used.value.message

    # Lifted: the empty platform is no parcel either, and says so.
    balance.value = "0.000"
    with pytest.raises(ScaleError) as empty:
        reader.wait_parcel_weight("A-2", 0.3, where="at S1")
    assert empty.value.code == "scale_empty"
    assert "reads 0 g" in empty.value.message

    # A parcel of the very same weight after the scale was empty is a new parcel.
    balance.value = "1.234"
    second = reader.wait_parcel_weight("A-2", 3.0)
    assert second.grams == 1234
    # A clearly different weight counts as a new parcel even without an empty reading between.
    balance.value = "2.500"
    assert reader.wait_parcel_weight("A-3", 3.0).grams == 2500


@pytest.mark.parametrize("between", [("D", "0.004"), ("S", "0.000"), ("D", "-0.003")])
def test_the_same_weight_again_after_a_near_empty_reading_is_a_new_parcel(
    reader: ScaleReader, sics: Sics, between: tuple[str, str]
) -> None:
    """Two parcels of the same weight in a row: a near-empty reading between them, even a moving one."""
    _, balance = sics
    balance.value = "1.234"
    assert reader.wait_parcel_weight("E-1", 3.0).grams == 1234
    # A nudge (moving, at the parcel's own weight) is the same parcel still on the scale.
    balance.mode, balance.value = "D", "1.230"
    wait_for(
        lambda: (r := reader.latest()) is not None and (r.grams, r.stable) == (1230, False), what="the nudge"
    )
    balance.mode, balance.value = "S", "1.234"
    wait_for(lambda: reader.stable_weight() is not None, what="settled again")
    assert reader.take_parcel_weight("E-2") is None
    # Lifted off: the scale reads (near) empty once, settled or not, then the next parcel weighs the same.
    mode, value = between
    balance.mode, balance.value = mode, value
    grams = round(float(value) * 1000)
    wait_for(lambda: (r := reader.latest()) is not None and r.grams == grams, what=f"{grams} g ({mode})")
    balance.mode, balance.value = "S", "1.234"
    second = reader.wait_parcel_weight("E-2", 3.0)
    assert second.grams == 1234
    assert reader.used() == UsedWeight(1234, "E-2")


def test_a_claim_given_back_can_be_taken_again_and_only_by_its_order(reader: ScaleReader, sics: Sics) -> None:
    _, balance = sics
    balance.value = "0.800"
    assert reader.wait_parcel_weight("B-1", 3.0).grams == 800
    reader.give_back("B-9")  # not the order that took it: nothing changes
    assert reader.parcel_weight() is None
    assert reader.take_parcel_weight("B-7") is None
    # The same order scanned again (its first scan recorded no job) may take its weight again.
    assert reader.take_parcel_weight("B-1") is not None
    reader.give_back("B-1")  # its pack recorded no job
    assert reader.used() is None
    assert reader.take_parcel_weight("B-2") is not None
    assert reader.used() == UsedWeight(800, "B-2")


def test_a_weight_serves_one_parcel_of_an_order_and_only_that_parcel_takes_it_again(
    reader: ScaleReader, sics: Sics
) -> None:
    _, balance = sics
    balance.value = "1.500"
    assert reader.wait_parcel_weight("M-1", 3.0).grams == 1500
    assert reader.used() == UsedWeight(1500, "M-1", 1)
    # Parcel 2 of the same order while parcel 1 still lies on the scale: not its weight.
    assert reader.take_parcel_weight("M-1", parcel=2) is None
    with pytest.raises(ScaleError) as used:
        reader.wait_parcel_weight("M-1", 0.2, parcel=2, where="at S1")
    assert used.value.code == "scale_weight_used"
    assert used.value.message.startswith("put parcel 2 of order M-1 on the scale at S1")
    assert "already used for parcel 1 of order M-1" in used.value.message
    # Parcel 1 scanned again (its pack recorded no job) takes it again at once.
    assert reader.take_parcel_weight("M-1", parcel=1) is not None
    reader.give_back("M-1", 2)  # not the parcel that took it: nothing changes
    assert reader.used() == UsedWeight(1500, "M-1", 1)
    # A new parcel settles: parcel 2 takes its weight, and parcel 1 may no longer take it.
    balance.value = "2.100"
    assert reader.wait_parcel_weight("M-1", 3.0, parcel=2).grams == 2100
    assert reader.used() == UsedWeight(2100, "M-1", 2)
    assert reader.take_parcel_weight("M-1", parcel=1) is None
    # Parcel 2's pack recorded no job: parcel 1's claim comes back, parcel 2 may take it again.
    reader.give_back("M-1", 2)
    assert reader.used() == UsedWeight(1500, "M-1", 1)
    assert reader.take_parcel_weight("M-1", parcel=2) is not None


def test_a_scan_waiting_for_a_parcel_takes_the_one_put_on_meanwhile(reader: ScaleReader, sics: Sics) -> None:
    _, balance = sics
    balance.value = "0.500"
    reader.wait_parcel_weight("C-1", 3.0)
    result: list[int] = []
    waiter = threading.Thread(target=lambda: result.append(reader.wait_parcel_weight("C-2", 10.0).grams))
    waiter.start()
    balance.value = "0.900"
    waiter.join(15)
    assert result == [900]
