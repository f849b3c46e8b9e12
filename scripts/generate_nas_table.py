"""Generate the tabular NAS benchmark of a search space: train every architecture with
each seed on a dataset and write the table the package ships.

    nice -n 10 python scripts/generate_nas_table.py            # conv-chain-small on digits
    python scripts/generate_nas_table.py --limit 5 --out /tmp/t.json   # a quick trial

Progress is appended to a JSON-lines file after every training run, so a killed run
resumes where it stopped. The table records the dataset, split seed, recipe, training
seeds, device, versions and how long generation took.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchtool import __version__
from benchtool.config import default_data_root
from benchtool.contracts.model import TrainRecipe
from benchtool.data import load_dataset
from benchtool.host import load_host
from benchtool.harness.nas.evaluators import TrainingEvaluator
from benchtool.harness.nas.table import NasTable

RECIPE = TrainRecipe(epochs=10, batch_size=64, optimizer="adam", lr=3e-3)
REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="conv-chain-small", help="registered search space (default: %(default)s)")
    parser.add_argument("--dataset", default="digits", help="registered dataset (default: %(default)s)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the data split (default: 0)")
    parser.add_argument("--seeds", default="0,1", help="training seeds, comma list (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--out", type=Path, default=None, help="table file (default: the space's table_path)")
    parser.add_argument("--progress", type=Path, default=REPO / ".benchtool" / "nas_table_progress.jsonl",
                        help="JSON-lines checkpoint to resume from (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N architectures (trials)")
    parser.add_argument("--shard", default=None, metavar="K/N",
                        help="train only architectures K, K+N, ... into the progress file and write no table; "
                             "run N shards at once, then once without --shard to assemble the table")
    return parser.parse_args(argv)


def parse_shard(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        k, n = (int(part) for part in value.split("/"))
    except ValueError:
        raise SystemExit(f"--shard {value!r}: expected K/N like 0/2") from None
    if not 0 <= k < n:
        raise SystemExit(f"--shard {value!r}: need 0 <= K < N")
    return k, n


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    host = load_host()
    space = host.registry.create("search_spaces", args.space)
    dataset = host.registry.create("datasets", args.dataset)
    bundle = load_dataset(dataset, root=default_data_root(), seed=args.split_seed)
    seeds = [int(s) for s in args.seeds.split(",")]
    out = args.out or space.table_path()
    if out is None:
        raise SystemExit(f"space {args.space!r} has no table_path; pass --out")
    args.progress.parent.mkdir(parents=True, exist_ok=True)
    evaluators = [
        TrainingEvaluator(space, bundle, RECIPE, device=args.device, train_seed=seed, cache_file=args.progress,
                           clock="cpu" if torch.device(args.device).type == "cpu" else "wall")
        for seed in seeds
    ]
    archs = list(itertools.islice(space.enumerate(), args.limit))
    shard = parse_shard(args.shard)
    if shard is not None:
        archs = archs[shard[0]::shard[1]]
    if not archs:
        raise SystemExit("no architectures to train: check --limit and --shard")
    if any(evaluator.recorded(arch) is None for arch in archs for evaluator in evaluators):
        # warm-up, so that first-call costs stay out of the recorded seconds; none are recorded when all is cached
        TrainingEvaluator(space, bundle, RECIPE, device=args.device).evaluate(archs[0])
    started = time.perf_counter()
    rows: dict[str, list] = {}
    total = len(archs) * len(seeds)
    for done, (arch, evaluator) in enumerate(itertools.product(archs, evaluators), start=1):
        outcome = evaluator.evaluate(arch)
        result = evaluator.recorded(arch)
        if result is None:
            raise SystemExit(f"{space.key(arch)} seed {evaluator.train_seed}: {outcome.status} {outcome.detail}")
        rows.setdefault(space.key(arch), []).append(result)
        if done % 50 == 0 or done == total:
            print(f"{done}/{total} trained, {time.perf_counter() - started:.0f} s this run", flush=True)
    if shard is not None:
        print(f"shard {args.shard} done; run without --shard to write the table", flush=True)
        return 0
    keys = sorted(rows)
    table = NasTable(
        meta={
            "space": space.name, "space_size": space.size, "dataset": dataset.name,
            "split": {"seed": args.split_seed, "train": len(bundle.train), "val": len(bundle.val),
                      "test": len(bundle.test), "source": f"benchtool.data.load_dataset({dataset.name!r})"},
            "recipe": RECIPE.as_dict(), "training_seeds": seeds, "device": str(torch.device(args.device)),
            "torch": torch.__version__, "benchtool": __version__, "python": platform.python_version(),
            "torch_threads": torch.get_num_threads(), "generated_by": "scripts/generate_nas_table.py",
            "train_seconds": "CPU seconds of the one training thread (wall seconds on a GPU): the cost a "
                             "search is charged, stable under a shared machine's load",
        },
        keys=keys,
        params=np.array([rows[k][0].params for k in keys], dtype=np.int64),
        val_accuracy=np.array([[r.val_accuracy for r in rows[k]] for k in keys]),
        test_accuracy=np.array([[r.test_accuracy for r in rows[k]] for k in keys]),
        train_seconds=np.array([[r.cost_seconds for r in rows[k]] for k in keys]),
    )
    table.save(out)
    print(f"wrote {out}: {len(keys)} architectures x {len(seeds)} seeds", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
