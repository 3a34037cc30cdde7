"""Find, verify or download the released SuperPoint / SuperGlue weights.

  where     every place looked for each file, in lookup order, and which one is used
  verify    git-blob SHA-1 of each file that would be used against the released one
  download  fetch missing or corrupt files (into --dir, else the user cache)

Lookup order: --dir, then $SUPERGLUE_ROS_WEIGHTS, then $XDG_CACHE_HOME/superglue_ros
(~/.cache/superglue_ros). Without network access, download the files on another
machine from the URLs that `where` prints and copy them into one of those places.
The released weights are for non-commercial research use only (Magic Leap licence).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from superglue_ros.tools.common import CliError

ACTIONS = ("where", "verify", "download")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("action", choices=ACTIONS, help="what to do")
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="weights directory (first place looked; download target)",
    )
    parser.add_argument(
        "--name",
        action="append",
        default=None,
        help="only this file (repeatable), e.g. superpoint_v1.pth",
    )
    parser.add_argument("--force", action="store_true", help="download even files that verify")


def run(args: argparse.Namespace) -> int:
    # No torch needed here: the weights module is imported for its lookup helpers only.
    from superglue_ros.models import weights as w

    names = args.name or list(w.RELEASED_SHA1)
    unknown = [n for n in names if n not in w.RELEASED_SHA1]
    if unknown:
        raise CliError(
            f"unknown weights file(s) {', '.join(unknown)}; known: " + ", ".join(w.RELEASED_SHA1)
        )
    if args.action == "download":
        w.download_weights(names, args.dir, force=args.force)
        print(w.LICENCE_NOTE)
        return 0

    places = w.search_places(args.dir)
    all_ok = True
    for name in names:
        used = next((p for p in places if (p.directory / name).is_file()), None)
        if args.action == "where":
            print(f"{name}:")
            for place in places:
                path = place.directory / name
                state = "present" if path.is_file() else "absent"
                mark = "  <- used" if place is used else ""
                print(f"  {path} ({place.origin}): {state}{mark}")
            if used is None:
                all_ok = False
                print(f"  not found; URL: {w.BASE_URL}{name}")
        else:
            if used is None:
                all_ok = False
                print(f"{name}: MISSING (looked in {', '.join(str(p.directory) for p in places)})")
                continue
            path = used.directory / name
            status = w.verify_file(path)
            all_ok &= status == "ok"
            if status == "ok":
                print(f"{name}: ok ({path})")
            elif used.verified:
                print(f"{name}: CORRUPT ({path}; `superglue-ros weights download` replaces it)")
            else:
                print(
                    f"{name}: DIFFERS from the released file ({path}; a user file is loaded as is)"
                )
    if not all_ok:
        print(
            "To get the released files: `superglue-ros weights download"
            + (f" --dir {args.dir}" if args.dir else "")
            + "`, or offline fetch them from "
            + w.BASE_URL
            + "<name> on another machine and copy them into "
            + str(args.dir or w.cache_dir())
            + f" (or the directory in ${w.ENV_VAR})."
        )
        print(w.LICENCE_NOTE)
    return 0 if all_ok else 1
