"""Write what each cell took, as a results store last recorded it, into
``benchtool/reference_durations.json``: the durations a first run's estimate reads where the
user's own store has none (:class:`benchtool.progress.ReferenceDurations`).

Usage: python scripts/reference_durations.py --machine "this project's 2-core CPU (...)"
                                             [--store PATH] [--budget default] [--device cpu]
                                             [--match TEXT]
Cells the store holds (those whose key contains TEXT, with --match) replace those already in
the file at that budget and device; the rest of the file is kept. Run it after a reference run
of ``benchtool run`` on the machine named.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchtool.store.db import ResultStore, resolve_store_path

TARGET = Path(__file__).resolve().parents[1] / "benchtool" / "reference_durations.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--machine", required=True, help="the machine the store's runs were measured on")
    parser.add_argument("--store", default=None, help="results database (default: the project's)")
    parser.add_argument("--budget", default="default")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--match", default="", help="only cells whose key contains this (e.g. fashion-mnist)")
    args = parser.parse_args()
    with ResultStore(resolve_store_path(args.store), create=False, readonly=True) as store:
        found = {key: seconds for key, seconds in store.past_durations(args.budget, args.device).items()
                 if key.partition("::")[0].endswith(".py")  # suite cells, not the end-of-run analyses
                 and args.match in key}
    data = json.loads(TARGET.read_text())
    data["machine"] = args.machine
    section = data["durations"].setdefault(f"{args.budget}/{args.device}", {})
    section.update({key: round(seconds, 2) for key, seconds in found.items()})
    data["durations"] = {k: dict(sorted(v.items())) for k, v in sorted(data["durations"].items())}
    TARGET.write_text(json.dumps(data, indent=1) + "\n")
    print(f"{len(found)} cells at {args.budget}/{args.device} from {args.store or resolve_store_path()}; "
          f"{len(section)} there now")


if __name__ == "__main__":
    main()
