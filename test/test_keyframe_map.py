"""The keyframe map: bounded memory, its eviction rule, save/load and damaged files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from superglue_ros.pipeline.keyframe_map import KeyframeMap, MapFileError, MapKeyframe
from superglue_ros.pipeline.params import validate
from superglue_ros.pipeline.types import DESCRIPTOR_BINARY, Features

from loop_scene import ring_sequence
from synthetic import orb_pipeline


def keyframe(
    keyframe_id: int, rng: np.random.Generator, words: np.ndarray | None = None
) -> MapKeyframe:
    count = 50
    features = Features(
        keypoints=rng.uniform(0, 100, (count, 2)).astype(np.float32),
        scores=rng.uniform(0, 1, count).astype(np.float32),
        descriptors=rng.normal(size=(count, 128)).astype(np.float32),
        image_size=(120, 160),
    )
    bow = None
    if words is not None:
        bow = (words, np.full(len(words), 1 / np.sqrt(len(words)), np.float32))
    track_ids = np.arange(count) + 1000 * keyframe_id
    return MapKeyframe.compact(keyframe_id, keyframe_id * 10, features, track_ids, None, bow)


def test_descriptors_are_stored_as_float16_and_the_size_is_as_documented() -> None:
    rng = np.random.default_rng(0)
    kept = keyframe(0, rng, np.arange(30, dtype=np.int32))
    assert kept.descriptors.dtype == np.float16 and kept.features().descriptors.dtype == np.float32
    n, d, w = 50, 128, 30
    # keypoints 8 + scores 2 + descriptors 2 D + track ids 8 per keypoint; 8 per word
    assert kept.nbytes == n * (8 + 2 + 2 * d + 8) + w * 8


def test_memory_is_bounded_by_max_keyframes() -> None:
    rng = np.random.default_rng(1)
    bounded = KeyframeMap(max_keyframes=5)
    for i in range(40):
        bounded.add(keyframe(i, rng))
        assert len(bounded) <= 5
    assert bounded.evicted == 35
    # no bag of words: the oldest go first
    assert [k.keyframe_id for k in bounded] == [35, 36, 37, 38, 39]
    assert bounded.nbytes <= 5 * keyframe(0, rng).nbytes


def test_the_most_redundant_old_keyframe_goes_first() -> None:
    rng = np.random.default_rng(2)
    bounded = KeyframeMap(max_keyframes=4, keep_newest=1)
    distinct = [np.arange(i * 10, i * 10 + 10, dtype=np.int32) for i in range(5)]
    # keyframes 1 and 2 look the same place (same words): 1 is redundant with its neighbour
    for i, words in enumerate([distinct[0], distinct[1], distinct[1], distinct[3]]):
        bounded.add(keyframe(i, rng, words))
    assert bounded.add(keyframe(4, rng, distinct[4])) == [1]
    assert [k.keyframe_id for k in bounded] == [0, 2, 3, 4]


def test_pipeline_keeps_evicted_keyframes_up_to_the_bound() -> None:
    pipeline = orb_pipeline(
        {
            "keyframes.buffer_size": 2,
            "keyframes.max_frames_between": 1,
            "map.max_keyframes": 3,
            "map.save_path": "unused.npz",
            "loop_closure.enabled": False,  # a kept map turns it on; ORB has no vocabulary
        }
    )
    seq = ring_sequence(frames=10)
    for image, stamp in zip(seq.images, seq.stamps_ns, strict=True):
        pipeline.process(image, stamp)
    assert pipeline.map is not None and len(pipeline.map) == 3
    # every frame was a keyframe; 0..7 left the buffer of 2; the map holds the newest 3
    assert [k.keyframe_id for k in pipeline.map] == [5, 6, 7]
    assert pipeline.map.get(7).descriptor_kind == DESCRIPTOR_BINARY
    with pytest.raises(KeyError, match="keyframe 0 is not in the map"):
        pipeline.map.get(0)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    saved = KeyframeMap(max_keyframes=10)
    for i in range(4):
        saved.add(keyframe(i, rng, np.arange(i, i + 20, dtype=np.int32)))
    path = saved.save(tmp_path / "map.npz")
    loaded = KeyframeMap.load(path)
    assert loaded.max_keyframes == 10 and len(loaded) == 4
    for a, b in zip(saved, loaded, strict=True):
        assert (a.keyframe_id, a.stamp_ns, a.image_size) == (
            b.keyframe_id,
            b.stamp_ns,
            b.image_size,
        )
        for name in ("keypoints", "scores", "descriptors", "track_ids", "words", "weights"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
            assert getattr(a, name).dtype == getattr(b, name).dtype
    # a smaller bound at load evicts by the usual rule
    assert len(KeyframeMap.load(path, max_keyframes=2)) == 2


def test_pipeline_saves_its_map_and_starts_from_it(tmp_path: Path) -> None:
    path = tmp_path / "yesterday.npz"
    params = {
        "keyframes.buffer_size": 2,
        "keyframes.max_frames_between": 1,
        "loop_closure.enabled": False,  # a kept map turns it on; ORB has no vocabulary
    }
    first = orb_pipeline({**params, "map.save_path": str(path)})
    seq = ring_sequence(frames=6)
    for image, stamp in zip(seq.images, seq.stamps_ns, strict=True):
        first.process(image, stamp)
    assert first.save_map() == str(path)
    second = orb_pipeline({**params, "map.load_path": str(path)})
    assert second.map is not None
    # the map and the buffered keyframes of yesterday: every one of the 6 frames
    assert [k.keyframe_id for k in second.map] == list(range(6))
    stamp, features = second.keyframe_features(5)
    assert stamp == seq.stamps_ns[5]
    np.testing.assert_array_equal(features.descriptors, first.keyframes[0].features.descriptors)


def test_damaged_and_foreign_map_files_are_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    saved = KeyframeMap(max_keyframes=3)
    saved.add(keyframe(0, rng))
    path = saved.save(tmp_path / "map.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(MapFileError, match="damaged"):
        KeyframeMap.load(truncated)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, keypoints=np.zeros((3, 2)))
    with pytest.raises(MapFileError, match="not a superglue_ros keyframe map"):
        KeyframeMap.load(foreign)
    with pytest.raises(MapFileError, match="does not exist"):
        KeyframeMap.load(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="does not exist"):
        orb_pipeline(
            {"map.load_path": str(tmp_path / "missing.npz"), "loop_closure.enabled": False}
        )


def test_a_kept_map_turns_loop_closure_on_unless_it_is_turned_off(tmp_path: Path) -> None:
    saved = str(tmp_path / "map.npz")
    assert not validate({})["loop_closure.enabled"]
    assert validate({"map.save_path": saved})["loop_closure.enabled"]
    assert validate({"map.load_path": saved})["loop_closure.enabled"]
    kept = {"map.save_path": saved, "loop_closure.enabled": False}
    assert not validate(kept)["loop_closure.enabled"]
    pipeline = orb_pipeline(kept)
    assert pipeline.map is not None and pipeline.loops is None
    # on by default, it needs a vocabulary: ORB has none shipped, and the error says so
    with pytest.raises(ValueError, match="needs a vocabulary for frontend orb"):
        orb_pipeline({"map.save_path": saved})
