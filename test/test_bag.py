"""`superglue-ros bag from-images`: contents of the written bag and its errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from superglue_ros.io import image_files, rosbag
from superglue_ros.io.images import image_to_array
from superglue_ros.io.stamps import stamp_to_ns
from superglue_ros.tools import cli


def run_cli(*argv: str) -> int:
    """superglue-ros with its real dispatch and error handling (exit status returned)."""
    return cli.main(list(argv))


def read_bag(path: Path) -> list[tuple[str, int, object]]:
    """(topic, bag timestamp, message) in bag order."""
    with AnyReader([path]) as reader:
        return [(c.topic, t, reader.deserialize(raw, c.msgtype)) for c, t, raw in reader.messages()]


def test_freiburg_images_with_camera_info(freiburg_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bag"
    camera = freiburg_dir / "camera.yaml"
    assert run_cli("bag", "from-images", str(freiburg_dir), str(out),
                   "--camera-yaml", str(camera)) == 0  # fmt: skip
    messages = read_bag(out)
    images = [m for topic, _, m in messages if topic == "/camera/image_raw"]
    infos = [m for topic, _, m in messages if topic == "/camera/camera_info"]
    files = sorted(freiburg_dir.glob("*.png"))
    assert len(images) == len(infos) == len(files) == 17
    stamps = [stamp_to_ns(m.header.stamp) for m in images]
    assert stamps == [image_files.stamp_from_name(p) for p in files]
    assert stamps[0] == 1341847980_722988000
    first = images[0]
    assert (first.encoding, first.width, first.height, first.step) == ("rgb8", 640, 480, 1920)
    expected = cv2.cvtColor(cv2.imread(str(files[0])), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(image_to_array(first), expected)
    k = rosbag.camera_matrix(infos[0])
    np.testing.assert_allclose(k, [[535.4, 0, 320.1], [0, 539.2, 247.6], [0, 0, 1]])
    assert infos[0].header == first.header and infos[0].distortion_model == "plumb_bob"


def write_gray_images(directory: Path, names: list[str]) -> None:
    directory.mkdir()
    for i, name in enumerate(names):
        cv2.imwrite(str(directory / name), np.full((24, 32), 10 * i, np.uint8))


def test_gray_images_at_a_rate_in_sqlite3(tmp_path: Path) -> None:
    images = tmp_path / "images"
    write_gray_images(images, ["a.png", "b.png", "c.png"])
    out = tmp_path / "bag"
    argv = ["bag", "from-images", str(images), str(out), "--rate", "10", "--format", "sqlite3",
            "--topic", "/cam0/image", "--frame-id", "cam0"]  # fmt: skip
    assert run_cli(*argv) == 0
    assert (out / "bag.db3").is_file()
    messages = read_bag(out)
    assert [topic for topic, _, _ in messages] == ["/cam0/image"] * 3
    assert [t for _, t, _ in messages] == [0, 100_000_000, 200_000_000]
    image = messages[1][2]
    assert (image.encoding, image.header.frame_id) == ("mono8", "cam0")
    assert int(image_to_array(image)[0, 0]) == 10


def test_errors_exit_2_and_leave_no_bag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bag"
    assert run_cli("bag", "from-images", str(tmp_path / "nope"), str(out)) == 2
    assert "does not exist" in capsys.readouterr().err

    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_cli("bag", "from-images", str(empty), str(out)) == 2
    assert "no images" in capsys.readouterr().err

    named = tmp_path / "named"
    write_gray_images(named, ["a.png", "b.png"])
    assert run_cli("bag", "from-images", str(named), str(out)) == 2
    assert "--rate" in capsys.readouterr().err

    broken = tmp_path / "broken"
    write_gray_images(broken, ["1.0.png", "2.0.png"])
    (broken / "3.0.png").write_bytes(b"not a png")
    assert run_cli("bag", "from-images", str(broken), str(out)) == 2
    assert "cannot read image" in capsys.readouterr().err
    assert not out.exists()


def test_ros_calibration_yaml(tmp_path: Path) -> None:
    path = tmp_path / "cam.yaml"
    path.write_text(
        "image_width: 64\nimage_height: 48\ncamera_name: c\n"
        "camera_matrix: {rows: 3, cols: 3, data: [100, 0, 32, 0, 101, 24, 0, 0, 1]}\n"
        "distortion_model: plumb_bob\n"
        "distortion_coefficients: {rows: 1, cols: 5, data: [0.1, 0, 0, 0, 0]}\n"
    )
    fields = image_files.camera_info_fields(path, 1_500_000_000, "c")
    assert fields["header"]["stamp"] == {"sec": 1, "nanosec": 500_000_000}
    np.testing.assert_allclose(fields["k"], [100, 0, 32, 0, 101, 24, 0, 0, 1])
    np.testing.assert_allclose(fields["p"], [100, 0, 32, 0, 0, 101, 24, 0, 0, 0, 1, 0])
    assert list(fields["d"]) == [0.1, 0, 0, 0, 0]
    path.write_text("image_width: 64\n")
    with pytest.raises(ValueError, match="missing or bad entry"):
        image_files.camera_info_fields(path, 0, "c")
