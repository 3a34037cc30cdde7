"""Weights files for tests that run SuperPoint + SuperGlue "from fixture weights".

write_test_checkpoints(directory, fixtures_dir) writes, under the released names:
  superpoint_v1.pth      the SuperPoint parity fixture's weights (seeded random, real layout);
  superglue_indoor.pth   seeded random SuperGlue weights in the released layout (D = 256,
  superglue_outdoor.pth  18 layers), plausible BatchNorm statistics; they match roughly like
                         mutual nearest neighbours on descriptor cosine, sharpened (gain 64)
                         because the random SuperPoint's descriptors are all alike
                         (see models.weights.synthetic_superglue_state).
Point the pipeline's ``weights_dir`` (or $SUPERGLUE_ROS_WEIGHTS) at the directory: files
there are loaded strictly but not hash-checked, so these test files load.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from superglue_ros.models.weights import synthetic_superglue_state


def superpoint_fixture_state(fixtures_dir: Path) -> dict[str, torch.Tensor]:
    with np.load(fixtures_dir / "superpoint_parity_small.npz") as npz:
        return {
            key[len("weights/") :]: torch.from_numpy(npz[key].copy())
            for key in npz.files
            if key.startswith("weights/")
        }


def write_test_checkpoints(directory: Path, fixtures_dir: Path) -> Path:
    """Write the three weights files into directory (created) and return it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(superpoint_fixture_state(Path(fixtures_dir)), directory / "superpoint_v1.pth")
    torch.save(
        synthetic_superglue_state(seed=1, projection_gain=64.0), directory / "superglue_indoor.pth"
    )
    torch.save(
        synthetic_superglue_state(seed=2, projection_gain=64.0), directory / "superglue_outdoor.pth"
    )
    return directory


SMALL_SUPERGLUE = {"keypoint_encoder": [32, 64], "GNN_layers": ["self", "cross"]}


def write_small_checkpoints(directory: Path, fixtures_dir: Path) -> Path:
    """Like write_test_checkpoints, with a 2-layer SuperGlue (still D = 256, so it takes
    SuperPoint's descriptors): quick to export to ONNX and to run."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(superpoint_fixture_state(Path(fixtures_dir)), directory / "superpoint_v1.pth")
    for seed, which in ((1, "indoor"), (2, "outdoor")):
        state = synthetic_superglue_state(seed, SMALL_SUPERGLUE, projection_gain=64.0)
        torch.save(state, directory / f"superglue_{which}.pth")
    return directory


# The pipeline parameters the SuperPoint + SuperGlue tests build their components with
# (test_learned on torch, test_onnx on both runtimes): small and fast on a CPU.
SMALL_PIPELINE_PARAMS = {
    "frontend": "superpoint",
    "matcher": "superglue",
    "device": "cpu",
    "superpoint.max_keypoints": 128,
    "superglue.sinkhorn_iterations": 10,
}
