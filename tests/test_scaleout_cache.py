"""The checkpoint cache shared by worker processes: two workers asking for the same model
at once train it once, both get the same weights, and no partial file is left behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HARNESS = Path(__file__).resolve().parent / "scaleout_tiny"

WORKER = """
import os, sys, time
from pathlib import Path
sys.path.insert(0, {harness!r})
import torch
import benchtool.models.trained as trained
from scaleout_tiny_plugin import Blobs, TinyMLP

real_train = trained.train

def slow_counting_train(*args, **kwargs):
    with open({log!r}, "a") as handle:
        handle.write(f"{{os.getpid()}}\\n")
    time.sleep(1.5)  # hold the key's lock long enough for the other worker to ask for it
    return real_train(*args, **kwargs)

trained.train = slow_counting_train
Path({ready!r}).joinpath(str(os.getpid())).touch()
while len(list(Path({ready!r}).iterdir())) < 2:  # start together
    time.sleep(0.01)
model = trained.trained_model(TinyMLP(), Blobs().load(root=Path("."), seed=0), seed=0, budget="small",
                              device="cpu", cache_dir=Path({cache!r}), progress=False)
print(repr([round(float(p.double().sum()), 10) for p in model.parameters()]))
"""


def test_two_workers_train_a_shared_model_once(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    ready.mkdir()
    script = WORKER.format(harness=str(HARNESS), log=str(tmp_path / "trainings"), ready=str(ready),
                           cache=str(tmp_path / "cache"))
    workers = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=240) for w in workers]
    for worker, (_, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-2000:]
    assert len((tmp_path / "trainings").read_text().splitlines()) == 1, "the second worker should load, not train"
    assert outputs[0][0] == outputs[1][0]  # the same weights in both workers
    files = sorted(p.name for p in (tmp_path / "cache" / "checkpoints").iterdir())
    assert [f for f in files if f.endswith(".pt")] and not [f for f in files if f.endswith(".tmp")], files
