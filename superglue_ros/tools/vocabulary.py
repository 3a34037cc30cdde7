"""``superglue-ros vocabulary build IMAGES OUT``: a bag-of-words vocabulary for loop closure.

Extracts the configured frontend's descriptors (--params, as the node runs it)
from every image in the IMAGES directory, clusters them into --words visual
words (k-means, seeded) and writes OUT (.npz), which the node and replay load
with ``loop_closure.vocabulary: OUT``. The logic is in
superglue_ros.pipeline.place_recognition.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from superglue_ros.tools.common import CliError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["build"], help="what to do (build)")
    parser.add_argument("images", type=Path, help="directory of training images")
    parser.add_argument("out", type=Path, help="vocabulary file to write (.npz)")
    parser.add_argument(
        "--params", type=Path, default=None, metavar="FILE", help="parameters file (node's YAML)"
    )
    parser.add_argument("--frontend", default=None, help="frontend (overrides --params)")
    parser.add_argument("--words", type=int, default=256, help="vocabulary size (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="k-means seed (default 0)")


def run(args: argparse.Namespace) -> int:
    from superglue_ros.io.image_files import list_images, read_image
    from superglue_ros.io.yaml_files import load_params_file
    from superglue_ros.pipeline.frontend import PreprocessingFrontend
    from superglue_ros.pipeline.params import validate
    from superglue_ros.pipeline.place_recognition import vocabulary_from_images
    from superglue_ros.pipeline.registry import build_frontend, choose_networks

    if args.words < 2:
        raise CliError(f"--words must be at least 2, got {args.words}")
    try:
        values = load_params_file(args.params) if args.params else {}
        if args.frontend:
            values["frontend"] = args.frontend
        config, _ = choose_networks(validate(values))
        paths = list_images(args.images)
        frontend = PreprocessingFrontend(build_frontend(config), config.integer("max_image_side"))
        images = (read_image(p) for p in paths)
        trained_on = f"{len(paths)} images of {args.images.name}"
        vocabulary = vocabulary_from_images(images, frontend, args.words, args.seed, trained_on)
    except (FileNotFoundError, ValueError) as error:
        raise CliError(str(error)) from error
    path = vocabulary.save(args.out)
    print(
        f"wrote {path}: {vocabulary.size} words for {config['frontend']} "
        f"({vocabulary.descriptor_kind}, {vocabulary.descriptor_dim} columns), {trained_on}"
    )
    return 0
