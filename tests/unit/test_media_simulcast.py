"""Simulcast layer switching: one continuous output stream from several layers.

A synthetic publisher sends the same pictures on several layers (each with its own SSRC and its own
random sequence number, timestamp, PictureID and TL0PICIDX origins), interleaved as a browser
does. The tests check what a subscriber's decoder relies on: sequence numbers without gaps or
duplicates, timestamps that keep media time, picture numbering without jumps, switches only at
key frames. The last test splices real libvpx streams and decodes the result.
"""

from __future__ import annotations

import fractions
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder, VpxPayloadDescriptor, vp8_depayload
from aiortc.jitterbuffer import JitterFrame
from av import VideoFrame

from atrium_media.forwarding.rewrite import seq_distance
from atrium_media.forwarding.simulcast import (
    LayerMonitor,
    LayerPacket,
    OutputPacket,
    SimulcastSwitcher,
    layer_packet,
)
from atrium_media.forwarding.vp8 import Vp8PayloadError, parse_vp8_descriptor, picture_id_distance

FRAME_TICKS = 3000  # 30 fps at 90 kHz
FRAME_SECONDS = 1 / 30
KEY_HEADER = bytes([0x10, 0x02, 0x00])
DELTA_HEADER = bytes([0x11, 0x02, 0x00])


@dataclass
class SyntheticLayer:
    ssrc: int
    seq: int
    ts_origin: int
    picture_id: int
    tl0: int
    packets_per_frame: int
    ntp_origin: float = 1000.0
    pending_keyframe: bool = True
    sent: list[LayerPacket] = field(default_factory=list)

    def frame(self, index: int, arrival: float) -> list[LayerPacket]:
        keyframe, self.pending_keyframe = self.pending_keyframe, False
        ts = (self.ts_origin + index * FRAME_TICKS) % 2**32
        packets = []
        for i in range(self.packets_per_frame):
            start = i == 0
            descriptor = bytes(
                VpxPayloadDescriptor(
                    partition_start=1 if start else 0,
                    partition_id=0,
                    picture_id=self.picture_id,
                    tl0picidx=self.tl0,
                    tid=(0, 1),
                )
            )
            body = (KEY_HEADER if keyframe else DELTA_HEADER) if start else b"\x00\x00"
            packets.append(
                layer_packet(
                    self.ssrc,
                    self.seq,
                    ts,
                    i == self.packets_per_frame - 1,
                    descriptor + body + bytes([index % 256]) * 20,
                    arrival + i * 0.0005,
                )
            )
            self.seq = (self.seq + 1) % 2**16
        self.picture_id = (self.picture_id + 1) % 2**15
        self.tl0 = (self.tl0 + 1) % 256
        self.sent.extend(packets)
        return packets

    def sender_report(self, at_frame: int) -> tuple[int, int, int]:
        """(ssrc, 64-bit NTP, RTP timestamp) for the capture instant of frame ``at_frame``."""
        seconds = self.ntp_origin + at_frame * FRAME_SECONDS
        ntp = (int(seconds) << 32) | int((seconds % 1) * 2**32)
        return self.ssrc, ntp, (self.ts_origin + at_frame * FRAME_TICKS) % 2**32


def make_layers(count: int = 3, seed: int = 7) -> list[SyntheticLayer]:
    rng = random.Random(seed)
    return [
        SyntheticLayer(
            ssrc=rng.getrandbits(32),
            seq=rng.randrange(2**16),
            ts_origin=rng.getrandbits(32),
            picture_id=rng.randrange(2**15),
            tl0=rng.randrange(256),
            packets_per_frame=1 + i,
        )
        for i in range(count)
    ]


def run(
    switcher: SimulcastSwitcher,
    layers: list[SyntheticLayer],
    frames: range,
    t0: float = 0.0,
) -> Iterator[tuple[int, OutputPacket | None, int | None]]:
    """Send frames on every layer (layer by layer per frame, as a browser does); yield
    (frame index, output packet, keyframe request) for everything the switcher says."""
    for index in frames:
        arrival = t0 + index * FRAME_SECONDS
        for layer in layers:
            for packet in layer.frame(index, arrival):
                result = switcher.push(packet)
                if result.keyframe_request is not None:
                    yield index, None, result.keyframe_request
                for out in result.packets:
                    yield index, out, None


def new_switcher(layers: list[SyntheticLayer], **kwargs: object) -> SimulcastSwitcher:
    return SimulcastSwitcher(
        [layer.ssrc for layer in layers],
        initial_sequence_number=65530,  # wraps early
        initial_timestamp=2**32 - 4000,
        initial_picture_id=2**15 - 2,
        initial_tl0_pic_idx=254,
        **kwargs,  # type: ignore[arg-type]
    )


def assert_continuous(out: list[OutputPacket]) -> None:
    """No sequence gap or duplicate; timestamps only move forward and change per frame; every
    frame has PictureID and TL0PICIDX one above the previous frame's."""
    for before, after in itertools.pairwise(out):
        assert seq_distance(after.sequence_number, before.sequence_number) == 1
        step = (after.timestamp - before.timestamp) % 2**32
        assert step < 2**31
        a = parse_vp8_descriptor(after.payload)
        b = parse_vp8_descriptor(before.payload)
        assert a.picture_id is not None and b.picture_id is not None
        assert a.tl0_pic_idx is not None and b.tl0_pic_idx is not None
        if a.starts_frame:
            assert step > 0
            assert picture_id_distance(a.picture_id, b.picture_id) == 1
            assert (a.tl0_pic_idx - b.tl0_pic_idx) % 256 == 1
        else:
            assert step == 0
            assert (a.picture_id, a.tl0_pic_idx) == (b.picture_id, b.tl0_pic_idx)


def test_first_layer_starts_at_its_key_frame_with_the_initial_values() -> None:
    layers = make_layers()
    switcher = new_switcher(layers)
    assert switcher.set_target(1, now=0.0) == layers[1].ssrc
    assert switcher.waiting_for_keyframe
    events = list(run(switcher, layers, range(5)))
    out = [o for _, o, _ in events if o is not None]
    assert {o.layer for o in out} == {1}
    assert all(o.source.ssrc == layers[1].ssrc for o in out)
    first = out[0]
    assert (first.sequence_number, first.timestamp) == (65530, 2**32 - 4000)
    desc = parse_vp8_descriptor(first.payload)
    assert (desc.picture_id, desc.tl0_pic_idx, desc.keyframe) == (2**15 - 2, 254, True)
    assert len(out) == 5 * layers[1].packets_per_frame
    assert_continuous(out)
    assert switcher.current_layer == 1 and not switcher.waiting_for_keyframe


def test_nothing_is_forwarded_before_a_target_or_before_its_key_frame() -> None:
    layers = make_layers()
    switcher = new_switcher(layers)
    assert not [o for _, o, _ in run(switcher, layers, range(3)) if o]  # no target
    switcher.set_target(2, now=0.1)
    # The key frames were sent already: deltas do not start the leg.
    assert not [o for _, o, _ in run(switcher, layers, range(3, 6)) if o]
    layers[2].pending_keyframe = True
    out = [o for _, o, _ in run(switcher, layers, range(6, 8)) if o]
    assert out and parse_vp8_descriptor(out[0].payload).keyframe
    assert switcher.packets_dropped > 0


def test_switch_waits_for_the_target_key_frame_and_keeps_forwarding_meanwhile() -> None:
    layers = make_layers()
    switcher = new_switcher(layers)
    switcher.set_target(0, now=0.0)
    out = [o for _, o, _ in run(switcher, layers, range(10)) if o]
    assert switcher.set_target(2, now=0.4) == layers[2].ssrc
    # No key frame on layer 2 yet: layer 0 keeps flowing.
    out += [o for _, o, _ in run(switcher, layers, range(10, 15)) if o]
    assert {o.layer for o in out} == {0}
    layers[2].pending_keyframe = True  # the publisher answers the PLI
    events = list(run(switcher, layers, range(15, 20)))
    new = [(i, o) for i, o, _ in events if o is not None]
    layer_of = [o.layer for _, o in new]
    assert layer_of[0] == 0  # frame 15 of layer 0 comes first in the interleaving
    first_high = layer_of.index(2)
    assert set(layer_of[first_high:]) == {2}
    assert parse_vp8_descriptor(new[first_high][1].payload).keyframe
    out += [o for _, o in new]
    assert_continuous(out)
    assert switcher.switches == 1


def test_switch_keeps_media_time_with_sender_reports() -> None:
    layers = make_layers()
    switcher = new_switcher(layers)
    for layer in layers:
        switcher.sender_report(*layer.sender_report(at_frame=0))
    switcher.sender_report(12345, 0, 0)  # not a layer: ignored
    switcher.set_target(2, now=0.0)
    out = [(i, o) for i, o, _ in run(switcher, layers, range(8)) if o]
    switcher.set_target(0, now=0.3)
    layers[0].pending_keyframe = True
    # Layer 0's key frame is the picture of frame 8; layer 2's frame 8 is never sent.
    out += [(i, o) for i, o, _ in run(switcher, layers, range(8, 12)) if o]
    frames: dict[int, int] = {}
    for index, o in out:
        frames.setdefault(index, o.timestamp)
    origin = frames[0]
    for index, ts in frames.items():
        assert (ts - origin) % 2**32 == index * FRAME_TICKS  # true media time, across the switch
    assert_continuous([o for _, o in out])


def test_switch_without_reports_advances_by_arrival_time() -> None:
    layers = make_layers()
    switcher = new_switcher(layers)
    switcher.set_target(0, now=0.0)
    out = [(i, o) for i, o, _ in run(switcher, layers, range(4)) if o]
    switcher.set_target(1, now=0.2)
    layers[1].pending_keyframe = True
    out += [(i, o) for i, o, _ in run(switcher, layers, range(4, 6)) if o]
    last_low = [o for i, o in out if i == 3][-1]
    first_mid = next(o for i, o in out if o.layer == 1)
    step = (first_mid.timestamp - last_low.timestamp) % 2**32
    # One frame interval, measured on arrival times (layer 1's packets arrive a little later).
    assert abs(step - FRAME_TICKS) < 200
    assert_continuous([o for _, o in out])


def test_a_bogus_sender_report_is_not_trusted() -> None:
    layers = make_layers()
    switcher = new_switcher(layers)
    switcher.sender_report(*layers[0].sender_report(at_frame=0))
    ssrc, ntp, rtp = layers[1].sender_report(at_frame=0)
    switcher.sender_report(ssrc, ntp, rtp + 90000 * 60)  # a minute off
    switcher.set_target(0, now=0.0)
    out = [o for _, o, _ in run(switcher, layers, range(3)) if o]
    switcher.set_target(1, now=0.1)
    layers[1].pending_keyframe = True
    out += [o for _, o, _ in run(switcher, layers, range(3, 5)) if o]
    steps = {(b.timestamp - a.timestamp) % 2**32 for a, b in itertools.pairwise(out)}
    assert max(steps) < 2 * FRAME_TICKS


def test_same_capture_instant_still_gets_a_new_timestamp() -> None:
    layers = make_layers(2)
    switcher = new_switcher(layers)
    for layer in layers:
        switcher.sender_report(*layer.sender_report(at_frame=0))
    switcher.set_target(0, now=0.0)
    out: list[OutputPacket] = []
    for index in range(3):
        for packet in layers[0].frame(index, index * FRAME_SECONDS):
            out.extend(switcher.push(packet).packets)
        layers[1].frame(index, index * FRAME_SECONDS)
    switcher.set_target(1, now=0.1)
    layers[1].pending_keyframe = True
    # Layer 1's key frame of picture 2, the picture layer 0 just delivered.
    layers[1].seq = (layers[1].seq - 2) % 2**16
    layers[1].picture_id -= 1
    layers[1].tl0 -= 1
    for packet in layers[1].frame(2, 2 * FRAME_SECONDS + 0.001):
        out.extend(switcher.push(packet).packets)
    assert out[-1].layer == 1
    assert (out[-1].timestamp - out[-3].timestamp) % 2**32 == 1
    assert_continuous(out)


def test_key_frame_packets_arriving_before_its_first_are_held_and_released() -> None:
    layers = make_layers()
    switcher = new_switcher(layers)
    switcher.set_target(0, now=0.0)
    out = [o for _, o, _ in run(switcher, layers, range(3)) if o]
    switcher.set_target(2, now=0.1)
    layers[2].pending_keyframe = True
    key = layers[2].frame(3, 0.1)
    for packet in layers[0].frame(3, 0.1):
        out.extend(switcher.push(packet).packets)
    assert not switcher.push(key[2]).packets  # reordered: the key frame's last packet first
    assert not switcher.push(key[1]).packets
    result = switcher.push(key[0])
    assert result.switched_to == 2
    assert [p.source.sequence_number for p in result.packets] == [p.sequence_number for p in key]
    out.extend(result.packets)
    assert_continuous(out)


def test_stale_and_repaired_packets_do_not_start_a_switch() -> None:
    layers = make_layers(2)
    switcher = new_switcher(layers)
    switcher.set_target(1, now=0.0)
    key = layers[1].frame(0, 0.0)
    repaired = layer_packet(
        key[0].ssrc, key[0].sequence_number, key[0].timestamp, False, key[0].payload, 0.0,
        repaired=True,
    )  # fmt: skip
    assert not switcher.push(repaired).packets  # an RTX copy of a key frame does not start it
    assert switcher.push(key[0]).switched_to == 1


def test_retransmissions_fill_gaps_in_place_and_old_layers_are_dropped() -> None:
    layers = make_layers(2)
    switcher = new_switcher(layers)
    switcher.set_target(1, now=0.0)
    sent: list[OutputPacket] = []
    packets = [p for i in range(3) for p in layers[1].frame(i, i * FRAME_SECONDS)]
    lost = packets[3]
    for packet in packets:
        if packet is not lost:
            sent.extend(switcher.push(packet).packets)
    gap = seq_distance(sent[3].sequence_number, sent[2].sequence_number)
    assert gap == 2  # the upstream loss stays a gap
    repair = layer_packet(
        lost.ssrc, lost.sequence_number, lost.timestamp, lost.marker, lost.payload, 0.2,
        repaired=True,
    )  # fmt: skip
    (filled,) = switcher.push(repair).packets
    assert seq_distance(filled.sequence_number, sent[2].sequence_number) == 1
    assert filled.timestamp == sent[2].timestamp or filled.timestamp == sent[3].timestamp
    assert filled.repaired
    # After a switch to layer 0, a late repair of layer 1 is not forwarded.
    switcher.set_target(0, now=0.3)
    layers[0].pending_keyframe = True
    for packet in layers[0].frame(3, 0.3):
        switcher.push(packet)
    assert switcher.current_layer == 0
    assert not switcher.push(repair).packets


def test_packets_older_than_the_epoch_are_dropped() -> None:
    layers = make_layers(1)
    switcher = new_switcher(layers)
    switcher.set_target(0, now=0.0)
    early = layers[0].frame(0, 0.0)  # not pushed: it turns up after the next key frame
    layers[0].pending_keyframe = True
    key = layers[0].frame(1, FRAME_SECONDS)
    assert switcher.push(key[0]).switched_to == 0
    late = layer_packet(
        early[0].ssrc, early[0].sequence_number, early[0].timestamp, True, early[0].payload,
        0.05, repaired=True,
    )  # fmt: skip
    assert not switcher.push(late).packets


def test_an_epoch_outlives_sequence_number_wraps() -> None:
    """A layer forwarded for minutes passes 2^16 input sequence numbers several times; no packet
    of it may look "older than the epoch" (a 16-bit comparison with the epoch's first one would
    drop every other 32768 packets)."""
    layers = make_layers(1)
    layers[0].packets_per_frame = 5
    switcher = new_switcher(layers)
    switcher.set_target(0, now=0.0)
    count = 0
    previous: OutputPacket | None = None
    for index in range(14_000):  # 70,000 packets: past 2^15 from the start, and past a wrap
        for packet in layers[0].frame(index, index * FRAME_SECONDS):
            (out,) = switcher.push(packet).packets
            if previous is not None:
                assert seq_distance(out.sequence_number, previous.sequence_number) == 1
            previous = out
            count += 1
    assert count == 70_000 and switcher.packets_dropped == 0
    # A late repair of a recent packet still lands in its place.
    late = layers[0].sent[-3]
    repair = layer_packet(
        late.ssrc, late.sequence_number, late.timestamp, late.marker, late.payload, 9999.0,
        repaired=True,
    )  # fmt: skip
    (again,) = switcher.push(repair).packets
    assert previous is not None
    assert seq_distance(again.sequence_number, previous.sequence_number) == -2


def test_keyframe_requests_are_repeated_while_waiting() -> None:
    layers = make_layers(2)
    switcher = new_switcher(layers, keyframe_retry_seconds=0.5)
    assert switcher.set_target(1, now=0.0) == layers[1].ssrc
    assert switcher.set_target(1, now=0.1) is None  # already asked
    assert switcher.poll(0.2) is None
    assert switcher.poll(0.6) == layers[1].ssrc
    for layer in layers:
        layer.pending_keyframe = False  # the publisher is slow to answer
    # Deltas of either layer keep arriving: the retry comes with them.
    requests = [r for _, _, r in run(switcher, layers, range(1, 60), t0=0.6) if r is not None]
    assert requests and set(requests) == {layers[1].ssrc}
    assert 3 <= len(requests) <= 5  # about every 0.5 s over ~2 s
    layers[1].pending_keyframe = True
    requests += [r for _, _, r in run(switcher, layers, range(60, 61), t0=0.6) if r]
    assert switcher.current_layer == 1
    assert switcher.poll(100.0) is None  # no longer waiting
    assert switcher.set_target(1, now=100.0) is None
    assert switcher.keyframe_requests == 2 + len(requests)


def test_switch_off_and_back_on_continues_the_stream() -> None:
    layers = make_layers()
    switcher = new_switcher(layers)
    for layer in layers:
        switcher.sender_report(*layer.sender_report(at_frame=0))
    switcher.set_target(1, now=0.0)
    out = [(i, o) for i, o, _ in run(switcher, layers, range(5)) if o]
    assert switcher.set_target(None, now=0.2) is None
    assert switcher.current_layer is None and not switcher.waiting_for_keyframe
    assert not [o for _, o, _ in run(switcher, layers, range(5, 50)) if o]  # switched off
    assert switcher.set_target(1, now=1.7) == layers[1].ssrc
    layers[1].pending_keyframe = True
    out += [(i, o) for i, o, _ in run(switcher, layers, range(50, 53)) if o]
    resumed = next(o for i, o in out if i == 50)
    last = [o for i, o in out if i == 4][-1]
    assert seq_distance(resumed.sequence_number, last.sequence_number) == 1
    assert (resumed.timestamp - last.timestamp) % 2**32 == 46 * FRAME_TICKS  # media time
    assert_continuous([o for _, o in out])


def test_switching_back_to_the_current_layer_cancels_the_pending_switch() -> None:
    layers = make_layers()
    switcher = new_switcher(layers)
    switcher.set_target(0, now=0.0)
    list(run(switcher, layers, range(2)))
    switcher.set_target(2, now=0.1)
    assert switcher.set_target(0, now=0.15) is None
    assert not switcher.waiting_for_keyframe
    layers[2].pending_keyframe = True
    out = [o for _, o, _ in run(switcher, layers, range(2, 4)) if o]
    assert {o.layer for o in out} == {0}


def test_many_switches_over_wrapping_counters() -> None:
    layers = make_layers(3, seed=99)
    for layer in layers:
        layer.seq = 65500
        layer.picture_id = 2**15 - 5
        layer.tl0 = 250
    switcher = new_switcher(layers)
    for layer in layers:
        switcher.sender_report(*layer.sender_report(at_frame=0))
    out: list[OutputPacket] = []
    rng = random.Random(3)
    frame = 0
    for _ in range(25):
        target = rng.randrange(3)
        if switcher.set_target(target, now=frame * FRAME_SECONDS) is not None:
            layers[target].pending_keyframe = True
        out += [o for _, o, _ in run(switcher, layers, range(frame, frame + 4)) if o]
        frame += 4
    assert switcher.switches >= 10
    assert_continuous(out)
    assert len({o.layer for o in out}) == 3


def test_h264_layers_switch_at_idr() -> None:
    def nal(nal_type: int) -> bytes:
        return bytes([0x60 | nal_type, 0x88, 0x84])

    switcher = SimulcastSwitcher([1, 2], initial_sequence_number=10, initial_timestamp=0)
    switcher.set_target(1, now=0.0)
    h264 = "video/H264"
    assert not switcher.push(layer_packet(2, 5, 900, True, nal(1), 0.0, mime_type=h264)).packets
    result = switcher.push(layer_packet(2, 6, 3900, True, nal(5), 0.03, mime_type=h264))
    assert result.switched_to == 1
    assert result.packets[0].payload == nal(5)
    (after,) = switcher.push(layer_packet(2, 7, 6900, True, nal(1), 0.06, mime_type=h264)).packets
    assert (after.sequence_number, after.timestamp) == (11, 3000)


def test_invalid_configuration_and_input() -> None:
    with pytest.raises(ValueError):
        SimulcastSwitcher([], initial_sequence_number=0, initial_timestamp=0)
    with pytest.raises(ValueError):
        SimulcastSwitcher([5, 5], initial_sequence_number=0, initial_timestamp=0)
    switcher = SimulcastSwitcher([5, 6], initial_sequence_number=0, initial_timestamp=0)
    with pytest.raises(ValueError):
        switcher.set_target(2, now=0.0)
    with pytest.raises(Vp8PayloadError):
        layer_packet(5, 0, 0, False, bytes([0x90]), 0.0)
    with pytest.raises(ValueError):
        layer_packet(5, 0, 0, False, b"\x00", 0.0, mime_type="audio/opus")
    unknown = layer_packet(7, 0, 0, False, bytes([0x10]) + KEY_HEADER, 0.0)
    assert switcher.push(unknown).packets == ()


def test_layer_monitor_bitrate_liveness_and_resolution() -> None:
    monitor = LayerMonitor([11, 22], window_seconds=1.0, silence_seconds=0.5)
    encoder = Vp8Encoder()
    picture = VideoFrame(width=320, height=180, format="yuv420p")
    picture.pts, picture.time_base = 0, fractions.Fraction(1, 90000)
    payloads, _ = encoder.encode(picture)
    key = layer_packet(22, 0, 0, False, payloads[0], 0.0)
    monitor.observe(key)
    for i in range(100):  # 100 packets of 125 bytes over one second: 100 kbit/s
        monitor.observe(layer_packet(11, i, i, False, bytes([0x00]) + b"\x00" * 124, i / 100))
    monitor.observe(layer_packet(11, 200, 0, False, bytes([0x00]) * 125, 0.995, repaired=True))
    monitor.observe(layer_packet(99, 0, 0, False, bytes([0x00]) * 125, 0.995))  # not a layer
    low, high = monitor.layers(now=0.995)
    assert (low.index, low.ssrc, low.active) == (0, 11, True)
    assert abs(low.bitrate - 100_000) <= 1000  # repairs are not counted as rate
    assert (low.width, low.height) == (0, 0)  # no key frame seen on it
    assert (high.width, high.height) == (320, 180)
    assert not high.active  # last packet at 0.0
    low, _ = monitor.layers(now=3.0)
    assert (low.bitrate, low.active) == (0, False)
    monitor.set_resolution(0, 640, 360)
    assert monitor.layers(now=3.0)[0].width == 640


def _real_frame(width: int, height: int, index: int) -> VideoFrame:
    picture = VideoFrame(width=width, height=height, format="yuv420p")
    for n, plane in enumerate(picture.planes):
        plane.update(bytes([(index * 7 + n * 50) % 256]) * plane.buffer_size)
    picture.pts = index * FRAME_TICKS
    picture.time_base = fractions.Fraction(1, 90000)
    return picture


def test_real_vp8_layers_spliced_decode_without_error() -> None:
    """Two libvpx encoders (160x90, 320x180) stand in for a browser's layers. The spliced
    output, depacketized and decoded by libvpx, yields every picture, at the layer's size."""
    sizes = [(160, 90), (320, 180)]
    encoders = [Vp8Encoder() for _ in sizes]
    ssrcs = [1111, 2222]
    seqs = [100, 40000]
    ts_origins = [5, 3_000_000_000]
    switcher = SimulcastSwitcher(ssrcs, initial_sequence_number=65000, initial_timestamp=77)
    switcher.set_target(0, now=0.0)
    output: list[OutputPacket] = []
    switch_at = 10
    for index in range(20):
        if index == switch_at:
            switcher.set_target(1, now=index * FRAME_SECONDS)
        for layer, (width, height) in enumerate(sizes):
            force = index == switch_at and layer == 1  # the PLI's answer
            payloads, _ = encoders[layer].encode(_real_frame(width, height, index), force)
            ts = (ts_origins[layer] + index * FRAME_TICKS) % 2**32
            for n, payload in enumerate(payloads):
                packet = layer_packet(
                    ssrcs[layer], seqs[layer], ts, n == len(payloads) - 1, payload,
                    index * FRAME_SECONDS + n * 0.0001,
                )  # fmt: skip
                seqs[layer] = (seqs[layer] + 1) % 2**16
                output.extend(switcher.push(packet).packets)
    for before, after in itertools.pairwise(output):
        assert seq_distance(after.sequence_number, before.sequence_number) == 1
    decoder = Vp8Decoder()
    decoded: list[tuple[int, int]] = []
    frames: dict[int, list[OutputPacket]] = {}
    for sent in output:
        frames.setdefault(sent.timestamp, []).append(sent)
    for ts, packets in frames.items():
        data = b"".join(vp8_depayload(p.payload) for p in packets)
        for picture in decoder.decode(JitterFrame(data=data, timestamp=ts)):
            assert isinstance(picture, VideoFrame)
            decoded.append((picture.width, picture.height))
    # Picture 10 of layer 0 was on its way when layer 1's key frame (also picture 10) arrived:
    # both are delivered, one clock tick apart.
    assert decoded == [sizes[0]] * (switch_at + 1) + [sizes[1]] * (20 - switch_at)
    picture_ids = [
        parse_vp8_descriptor(ps[0].payload).picture_id for ps in frames.values()
    ]  # one per frame, consecutive across the switch
    first = picture_ids[0]
    assert first is not None
    assert picture_ids == [(first + i) % 2**15 for i in range(21)]
