"""pytest-xdist: each worker's device (``--bt-gpus``) and thread share, the cells that
share a trained model kept on one worker (``loadgroup``), and which collected items are cells
(for the controller's estimate and progress lines)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from benchtool.pytest.session import BenchSession, cell_nodeids

CELLS_FOLDER = "benchtool_cells_folder"  # workerinput key: where each worker lists the cells it collected
_cells_folder_key = pytest.StashKey[Path]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("benchtool").addoption(
        "--bt-gpus", default=None, metavar="LIST",
        help="GPU indices pytest-xdist workers are spread over, worker k on the k-th mod their number "
             "(default: every GPU)")


def pytest_benchtool_configure(config: pytest.Config, bench: BenchSession) -> None:
    """A pytest-xdist worker ``gwK`` computes on the K-th GPU (mod their number), with its
    share of the cores; ``-n`` without ``--dist`` keeps a model's cells on one worker."""
    import torch

    from benchtool.executors.devices import parse_gpus, worker_device, worker_threads, xdist_worker_index

    workerinput = getattr(config, "workerinput", {})
    spec = config.getoption("--bt-device")
    gpus = parse_gpus(config.getoption("--bt-gpus"))
    device = worker_device(spec, bench.config.device, gpus, xdist_worker_index(workerinput.get("workerid")))
    if device.type == "cuda":
        torch.cuda.set_device(device)  # stray .cuda() calls land on this worker's GPU too
    if "workercount" in workerinput:  # each pytest-xdist worker computes on its share of the cores
        torch.set_num_threads(worker_threads(workerinput["workercount"], torch.get_num_threads()))
    bench.config.device = device
    group_by_model(config)


def group_by_model(config: pytest.Config) -> None:
    """``-n N`` without ``--dist`` distributes by ``xdist_group`` (``loadgroup``): the cells
    that share a trained model run on one worker, so each model trains once per run."""
    config.addinivalue_line("markers", "xdist_group(name): cells run by one worker (they share a trained model)")
    given = config.known_args_namespace  # the command line as typed, on the controller and its workers
    if not getattr(given, "numprocesses", None) or getattr(given, "dist", None) != "no":
        return  # no -n, or --dist chosen by the user
    if hasattr(config, "workerinput"):
        config.option.loadgroup = True  # the worker then tags each cell's node id with its group
    elif config.option.dist == "load":
        config.option.dist = "loadgroup"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tag each cell's node id with its ``xdist_group`` on a ``loadgroup`` worker, where
    pytest-xdist's own tagging did not take.

    pytest-xdist (3.8) tags by assigning ``item._nodeid``; since pytest 9.2 a node keeps its
    id in ``item._id`` (a structured ``NodeId``), so that assignment no longer changes
    ``item.nodeid``, the controller sees untagged ids and ``loadgroup`` silently degrades to
    ``load``. This sets the id the way the running pytest stores it, and does nothing where
    xdist's tag is already there (older pytest, or a fixed xdist).
    """
    if not hasattr(config, "workerinput") or not config.getvalue("loadgroup"):
        return
    for item in items:
        groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                         for m in item.iter_markers("xdist_group")})
        if not groups:
            continue
        suffix = "@" + "_".join(groups)
        if item.nodeid.endswith(suffix):
            continue
        tagged = item.nodeid + suffix
        node_id = getattr(item, "_id", None)
        if node_id is not None and not isinstance(node_id, str):
            item._id = type(node_id).parse(tagged)  # pytest >= 9.2
        else:
            item._nodeid = tagged


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``loadgroup`` whose crashed cell fails alone (:mod:`benchtool.executors.xdist_groups`)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from benchtool.executors.xdist_groups import CrashSafeGroupScheduling

    return CrashSafeGroupScheduling(config, log)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """Controller: give each worker a folder to list its cells in. pytest-xdist sends the
    controller the ids a worker collected, not which of them are cells (items that record,
    a fixture closure only the worker knows), and the estimate counts cells only."""
    config = node.config
    if _cells_folder_key not in config.stash:
        config.stash[_cells_folder_key] = Path(tempfile.mkdtemp(prefix="benchtool-cells-"))
    node.workerinput[CELLS_FOLDER] = str(config.stash[_cells_folder_key])


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Worker: list the collected cells before pytest-xdist tells the controller it has
    collected (its own hook runs after this one)."""
    workerinput = getattr(session.config, "workerinput", {})
    if CELLS_FOLDER not in workerinput:
        return
    cells = cell_nodeids(session.items)
    target = Path(workerinput[CELLS_FOLDER]) / f"{workerinput['workerid']}.json"
    partial = target.with_suffix(".partial")
    partial.write_text(json.dumps(cells))
    os.replace(partial, target)  # the controller never reads half a list


def worker_cells(node: Any) -> list[str] | None:
    """Controller: the cells worker ``node`` collected, or None where it listed none (a worker
    on another host, whose folder is not this one's)."""
    folder = node.workerinput.get(CELLS_FOLDER)
    try:
        return list(json.loads((Path(folder) / f"{node.workerinput['workerid']}.json").read_text()))
    except (OSError, TypeError, ValueError):
        return None


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(_cells_folder_key, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
