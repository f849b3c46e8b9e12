"""Executors without a cluster: the local executor, resource slots, executor selection,
a missing Ray extra, per-worker GPU binding, cell batching and crash-safe grouping."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from benchtool.config import RunConfig
from benchtool.errors import UsageError
from benchtool.executors import (
    Executor, LocalExecutor, Outcome, Resources, builtin_executors, create_executor, get_executor, task_device,
)
from benchtool.executors.cells import plan_batches
from benchtool.executors.devices import in_task, parse_gpus, worker_device, xdist_worker_index


def _fail(message: str) -> None:
    raise RuntimeError(message)


# --- the local executor ----------------------------------------------------------------


def test_local_executor_runs_calls_here_and_reports_failures() -> None:
    executor = LocalExecutor()
    done = executor.submit(divmod, 17, 5)
    failed = executor.submit(_fail, "no luck")
    assert done.done() and done.result() == (3, 2)
    assert Outcome.of(failed) == Outcome(error="RuntimeError: no luck")
    assert not Outcome.of(failed).ok
    outcomes = executor.map(abs, [-3, 2, -1])
    assert [o.value for o in outcomes] == [3, 2, 1] and all(o.ok for o in outcomes)
    assert executor.slots(Resources(cpus=1)) == 1  # serial: an ask/tell search keeps one trial in flight


def test_bad_resources_and_retries_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="cpus=-1"):
        Resources(cpus=-1)
    with pytest.raises(UsageError, match="retries must be an integer >= 0, got -2"):
        LocalExecutor().submit(abs, 1, retries=-2)


class _Cluster(Executor):
    """An executor that only declares its capacity (for the slot arithmetic)."""

    name = "fake"

    def __init__(self, cpus: float, gpus: float) -> None:
        self.total = Resources(cpus, gpus)

    def submit(self, fn: Any, /, *args: Any, resources: Resources | None = None, retries: int = 0,
               **kwargs: Any) -> Future:
        raise NotImplementedError

    def capacity(self) -> Resources:
        return self.total


@given(st.integers(0, 64), st.integers(0, 8), st.sampled_from([0.25, 0.5, 1.0, 2.0]), st.sampled_from([0.0, 0.5, 1.0]))
def test_slots_are_how_many_requests_fit_at_once(cpus: int, gpus: int, need_cpus: float, need_gpus: float) -> None:
    slots = _Cluster(cpus, gpus).slots(Resources(need_cpus, need_gpus))
    fits = max(n for n in range(0, 300) if n * need_cpus <= cpus and n * need_gpus <= gpus)
    assert slots == max(1, fits)


def test_executor_selection() -> None:
    assert isinstance(get_executor(None), LocalExecutor)
    assert isinstance(get_executor(RunConfig()), LocalExecutor)
    with pytest.raises(UsageError, match="unknown executor 'dask'; expected one of: local, ray"):
        create_executor("dask")


def test_ray_missing_is_a_usage_error_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` does without the extra
    with pytest.raises(UsageError, match=r"install it with: pip install 'benchtool\[ray\]'"):
        get_executor(RunConfig(executor="ray"))


def test_nothing_of_ray_is_imported_unless_selected() -> None:
    code = ("import sys, benchtool.executors, benchtool.executors.cells, benchtool.pytest_plugin, benchtool.cli; "
            "assert 'ray' not in sys.modules, 'ray was imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


# --- devices ---------------------------------------------------------------------------


@given(st.lists(st.integers(0, 15), min_size=1, max_size=6, unique=True))
def test_gpu_lists_parse(gpus: list[int]) -> None:
    assert parse_gpus(" , ".join(map(str, gpus))) == gpus


@pytest.mark.parametrize("bad", ["", "a", "0,-1", "0,0", "1.5"])
def test_bad_gpu_lists_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError, match="--bt-gpus"):
        parse_gpus(bad)


def test_xdist_worker_ids() -> None:
    assert xdist_worker_index(None) is None
    assert xdist_worker_index("gw0") == 0 and xdist_worker_index("gw12") == 12
    with pytest.raises(UsageError, match="'master'"):
        xdist_worker_index("master")


@given(st.integers(0, 40), st.integers(1, 8), st.one_of(st.none(), st.lists(st.integers(0, 7), min_size=1,
                                                                                  max_size=8, unique=True)))
def test_worker_k_computes_on_gpu_k_mod_n(worker: int, count: int, gpus: list[int] | None) -> None:
    gpus = None if gpus is None else [g % count for g in gpus]
    gpus = None if gpus is None else list(dict.fromkeys(gpus))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.cuda, "device_count", lambda: count)
        device = worker_device("auto", torch.device("cuda", 0), gpus, worker)
    pool = gpus or list(range(count))
    assert device == torch.device("cuda", pool[worker % len(pool)])


def test_cpu_and_pinned_devices_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert worker_device("cpu", torch.device("cpu"), None, 3) == torch.device("cpu")
    assert worker_device("cuda:2", torch.device("cuda", 2), None, 3) == torch.device("cuda", 2)
    assert worker_device("auto", torch.device("cuda", 0), None, None) == torch.device("cuda", 0)
    with pytest.raises(UsageError, match="--bt-gpus needs a CUDA device"):
        worker_device("cpu", torch.device("cpu"), [0], 1)
    with pytest.raises(UsageError, match="either --bt-device cuda:2 or --bt-gpus"):
        worker_device("cuda:2", torch.device("cuda", 2), [0, 1], 1)
    with pytest.raises(UsageError, match="GPU 7 does not exist; this machine has cuda:0..cuda:3"):
        worker_device("auto", torch.device("cuda", 0), [1, 7], 0)


def test_task_device_is_the_executors_choice_inside_a_task() -> None:
    assert task_device("cpu") == torch.device("cpu")
    with in_task("cuda:0"):
        assert task_device("cpu") == torch.device("cuda", 0)
    assert task_device(torch.device("cpu")) == torch.device("cpu")


def _configure(numprocesses: int | None = None, **options: str | None) -> tuple[str, torch.device]:
    """The executor and xdist features' configure steps on a stand-in pytest config."""
    from benchtool.pytest import dispatch, xdist

    values = {"--bt-executor": "local", "--bt-gpus": None, "--bt-device": "cpu", "--bt-ray-address": None, **options}
    registry = builtin_executors()
    config = SimpleNamespace(getoption=values.__getitem__, option=SimpleNamespace(numprocesses=numprocesses),
                             pluginmanager=SimpleNamespace(get_plugin=lambda name: registry),
                             known_args_namespace=SimpleNamespace(), addinivalue_line=lambda *args: None)
    bench = SimpleNamespace(config=RunConfig())
    for feature in (dispatch, xdist):  # in the order pytest calls them
        feature.pytest_benchtool_configure(config, bench)  # type: ignore[arg-type]
    return bench.config.executor, bench.config.device


def test_scale_out_options_are_checked() -> None:
    assert _configure() == ("local", torch.device("cpu"))
    with pytest.raises(UsageError, match="unknown executor 'spark'"):
        _configure(**{"--bt-executor": "spark"})
    with pytest.raises(UsageError, match="--bt-gpus needs a CUDA device"):
        _configure(**{"--bt-gpus": "0"})
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'benchtool[ray]'")
    with pytest.raises(UsageError, match="--bt-executor ray and -n both spread cells"):
        _configure(numprocesses=2, **{"--bt-executor": "ray"})
    with pytest.raises(UsageError, match="--bt-gpus is for -n on one machine"):
        _configure(**{"--bt-executor": "ray", "--bt-gpus": "0"})


def test_the_registry_takes_concrete_executors_with_new_names() -> None:
    registry = builtin_executors()
    assert registry.names() == ("local", "ray")
    with pytest.raises(UsageError, match="executor 'local' is registered twice"):
        registry.add(LocalExecutor)
    with pytest.raises(UsageError, match="expected a concrete subclass of benchtool.executors.Executor"):
        registry.add(Executor)
    registry.add(_Cluster)
    assert registry.get("fake") is _Cluster


# --- cells: batching and crash-safe grouping ---------------------------------------------


class _Item:
    def __init__(self, nodeid: str, group: str | None) -> None:
        self.nodeid, self.path = nodeid, Path(nodeid.split("::")[0])
        self._mark = SimpleNamespace(args=(group,), kwargs={}) if group else None

    def get_closest_marker(self, name: str) -> Any:
        return self._mark if name == "xdist_group" else None


@given(st.lists(st.tuples(st.sampled_from(["a.py", "b.py"]), st.sampled_from([None, "g1", "g2"])), max_size=30),
       st.integers(1, 4))
def test_batches_keep_groups_whole_and_hold_every_cell_once(cells: list[tuple[str, str | None]], slots: int) -> None:
    items = [_Item(f"{path}::test[{i}]", group) for i, (path, group) in enumerate(cells)]
    batches = plan_batches(items, slots)  # type: ignore[arg-type]
    flat = [nodeid for batch in batches for nodeid in batch]
    assert sorted(flat) == sorted(item.nodeid for item in items)
    group_of = {item.nodeid: item._mark.args[0] if item._mark else None for item in items}
    for group in ("g1", "g2"):
        holding = [b for b in batches if any(group_of[n] == group for n in b)]
        assert len(holding) <= 1 and all(group_of[n] == group for b in holding for n in b)
    for path in ("a.py", "b.py"):
        loose = [b for b in batches if all(group_of[n] is None and n.startswith(path) for n in b)]
        assert len(loose) <= slots


class _Node:
    def __init__(self) -> None:
        self.shutting_down = False
        self.sent: list[list[int]] = []

    def send_runtest_some(self, indices: list[int]) -> None:
        self.sent.append(indices)

    def shutdown(self) -> None:
        self.shutting_down = True


def test_a_crashed_cell_is_not_sent_again_with_its_group() -> None:
    pytest.importorskip("xdist")
    from benchtool.executors.xdist_groups import CrashSafeGroupScheduling

    cells = [f"s.py::t[{i}]@g" for i in range(4)] + ["s.py::u@h"]
    sched = CrashSafeGroupScheduling(SimpleNamespace(getvalue=lambda name: ["popen", "popen"]))
    dead, alive = _Node(), _Node()
    sched.registered_collections = {dead: cells, alive: cells}
    sched.assigned_work = {dead: {"g": {c: i == 0 for i, c in enumerate(cells[:4])}}, alive: {"h": {cells[4]: True}}}
    assert sched.remove_node(dead) == cells[1]  # t[0] finished, t[1] was running when the worker died
    assert alive.sent == [[2, 3]]  # the rest of the group, not the cell that killed its worker


@given(st.integers(1, 64), st.integers(1, 16), st.integers(1, 64))
def test_workers_share_the_cores(cores: int, workers: int, current: int) -> None:
    from benchtool.executors import devices

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(devices, "usable_cpus", lambda: cores)
        threads = devices.worker_threads(workers, current)
    assert 1 <= threads <= current
    assert threads * workers <= cores or threads == 1
