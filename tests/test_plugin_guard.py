"""The one guard around plugin calls (:mod:`benchtool.contracts._guard`): exceptions name the
plugin (out of memory with the size it tried), every call is bounded in time (loops, sleeps,
swallowed interrupts, other threads, nesting, the hard stage), and the model snapshot covers
hooks and ``requires_grad`` so a plugin cannot poison the cells after it."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from benchtool.contracts import _guard
from benchtool.contracts._guard import EXIT_HUNG, TimedOut, TimeoutPolicy, deadline, guard
from benchtool.contracts._state import ModelSnapshot
from benchtool.contracts.attack import Attack
from benchtool.contracts.limits import LossWeighting, TargetFunction, TaskSpec
from benchtool.contracts.uncertainty import UncertaintyEstimator
from benchtool.errors import ContractViolation, HyperparameterError, PluginRaised, UsageError, describe_error
from benchtool.testing.estimators import conformance_task
from benchtool.watchdog import parse_timeout

BOUNDS = (0.0, 1.0)


def violation_of(call, *args, **kwargs) -> ContractViolation:  # noqa: ANN001
    with pytest.raises(ContractViolation) as caught:
        call(*args, **kwargs)
    return caught.value


# --- exceptions ------------------------------------------------------------------------


def test_an_exception_names_the_plugin_and_keeps_the_original_as_cause() -> None:
    with pytest.raises(PluginRaised) as caught:
        with guard("x", "attacks", "perturb"):
            raise RuntimeError("boom")
    assert str(caught.value) == "plugin 'x' raised RuntimeError: boom"
    assert (caught.value.plugin, caught.value.rule) == ("x", "no-exception")
    assert isinstance(caught.value.__cause__, RuntimeError)
    with pytest.raises(PluginRaised, match=r"^plugin 'x' raised SystemExit: 3$"):
        with guard("x", "attacks", "perturb"):
            sys.exit(3)
    with pytest.raises(PluginRaised, match=r"^plugin 'x' raised KeyError$"):
        with guard("x", "attacks", "perturb"):
            raise KeyError


@pytest.mark.parametrize("error", [ContractViolation("x", "some-rule", "detail"), UsageError("bad option"),
                                   HyperparameterError("x: members must be >= 2, got 1"), KeyboardInterrupt()])
def test_rule_breaks_usage_errors_and_ctrl_c_pass_as_they_are(error: BaseException) -> None:
    """A plugin's HyperparameterError too: a ValueError to Python, reported as the user's bad value."""
    with pytest.raises(type(error)) as caught:
        with guard("x", "attacks", "perturb"):
            raise error
    assert caught.value is error


@pytest.mark.parametrize("error, expected", [
    (RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you "
                  "tried to allocate 281474976710656 bytes. Error code 12 (Cannot allocate memory)"),
     "RuntimeError: out of memory, tried to allocate 256.00 TiB (281474976710656 bytes)"),
    (RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 1048576 bytes."),
     "RuntimeError: out of memory, tried to allocate 1.00 MiB (1048576 bytes)"),
    (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
                                 "79.19 GiB of which 1.50 GiB is free."),
     "OutOfMemoryError: out of memory, tried to allocate 2.00 GiB"),
    (MemoryError("Unable to allocate 7.45 GiB for an array with shape (1000000000,) and data type float64"),
     "MemoryError: out of memory, tried to allocate 7.45 GiB"),
    (MemoryError(), "MemoryError: out of memory"),
])
def test_out_of_memory_says_the_size_it_tried(error: BaseException, expected: str) -> None:
    with pytest.raises(PluginRaised) as caught:
        with guard("big", "estimators", "fit"):
            raise error
    assert str(caught.value) == f"plugin 'big' raised {expected}"


def test_a_real_cpu_allocation_failure() -> None:
    with pytest.raises(PluginRaised, match=r"raised RuntimeError: out of memory, tried to allocate 256\.00 TiB"):
        with guard("big", "attacks", "perturb"):
            torch.empty(2**48, dtype=torch.uint8)
    assert describe_error(ValueError("plain")) == "plain"


@pytest.mark.parametrize("name", ["PluginRaised", "describe_error", "is_out_of_memory", "format_bytes"])
def test_the_moved_error_names_still_import_from_the_guard_with_a_deprecation_warning(name: str) -> None:
    from benchtool import errors

    with pytest.warns(DeprecationWarning, match=rf"_guard\.{name} moved to benchtool\.errors\.{name}"):
        assert getattr(_guard, name) is getattr(errors, name)


def test_plugin_raised_survives_pickling_from_its_new_home() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(PluginRaised("x", RuntimeError("boom"))))
    assert (type(error), str(error), error.rule) == (PluginRaised, "plugin 'x' raised RuntimeError: boom", "no-exception")


# --- time limits -----------------------------------------------------------------------


def no_alarm_left() -> None:
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    time.sleep(0.1)  # a stray DeadlineExceeded would surface here


@pytest.mark.parametrize("hang", ["loop", "sleep", "swallows"])
def test_a_call_that_does_not_return_fails_returns_in_time(hang: str) -> None:
    def plugin() -> None:
        if hang == "loop":
            while True:
                pass
        for _ in range(20):
            try:
                time.sleep(10)
            except BaseException:  # noqa: BLE001 - a plugin that swallows the interrupt, twice
                if hang != "swallows":
                    raise

    started = time.monotonic()
    with pytest.raises(ContractViolation) as caught:
        with guard("slow", "attacks", "perturb", 0.2):
            plugin()
    assert str(caught.value) == "plugin 'slow' broke rule 'returns-in-time': perturb did not return within 0.2 s"
    assert time.monotonic() - started < 3
    no_alarm_left()


def test_a_late_return_is_a_violation_and_a_prompt_one_costs_nothing() -> None:
    def late() -> int:
        try:
            time.sleep(5)
        except BaseException:  # noqa: BLE001
            return 1
        return 2

    with pytest.raises(ContractViolation, match="returns-in-time"):
        with guard("late", "strategies", "propose", 0.1):
            late()
    for _ in range(1000):
        with guard("quick", "strategies", "propose", 5.0):
            pass
    no_alarm_left()


def test_nested_guards_keep_the_outer_deadline_and_the_inner_reports_itself() -> None:
    with pytest.raises(TimedOut, match="^outer did not return within 0.2 s$"):
        with deadline(0.2, "outer"):
            with guard("inner", "attacks", "perturb", 30):  # cannot extend the outer limit
                time.sleep(10)
    with deadline(5, "outer"):
        with pytest.raises(ContractViolation, match="'inner' broke rule 'returns-in-time'"):
            with guard("inner", "attacks", "perturb", 0.1):
                time.sleep(10)
        time.sleep(0.2)  # the outer deadline still runs, re-armed
    no_alarm_left()


def test_off_the_main_thread_a_watchdog_thread_interrupts_python_code() -> None:
    failures: list[str] = []

    def work() -> None:
        try:
            with guard("threaded", "attacks", "perturb", 0.2):
                while True:
                    pass
        except ContractViolation as exc:
            failures.append(str(exc))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(10)
    assert failures == ["plugin 'threaded' broke rule 'returns-in-time': perturb did not return within 0.2 s"]


def test_sigalrm_owned_by_someone_else_is_left_alone() -> None:
    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    try:
        with pytest.raises(ContractViolation, match="returns-in-time"):
            with guard("spins", "attacks", "perturb", 0.2):
                while True:
                    pass
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0) and not fired
    finally:
        signal.signal(signal.SIGALRM, previous)


def test_the_policy_scales_per_kind_defaults_by_budget_and_the_override_replaces_them() -> None:
    assert TimeoutPolicy(budget="small").seconds("attacks", "perturb") == 120
    assert TimeoutPolicy(budget="full").seconds("attacks", "perturb") == 1200
    assert TimeoutPolicy(budget="default").seconds("strategies", "propose") == 30
    assert TimeoutPolicy(budget="small").seconds("loss_weightings", "combine") == 60
    assert TimeoutPolicy(budget="full", override=2.5).seconds("estimators", "fit") == 2.5
    previous = _guard.set_policy(TimeoutPolicy(override=0.2))
    try:
        with pytest.raises(ContractViolation, match="within 0.2 s"):
            with guard("x", "estimators", "fit"):
                time.sleep(5)
    finally:
        _guard.set_policy(previous)


@pytest.mark.parametrize("value, expected", [(None, None), ("2.5", 2.5), ("600", 600.0)])
def test_parse_timeout(value: str | None, expected: float | None) -> None:
    assert parse_timeout(value) == expected


HARD_STAGE = """
import signal, time
from pathlib import Path
from benchtool.contracts import _guard
report = Path({report!r})
_guard.set_policy(_guard.TimeoutPolicy(on_hard_timeout=lambda message: report.write_text(message)))
with _guard.guard("native", "attacks", "perturb", 0.2):
    signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGALRM}})  # as a native call that ignores signals
    time.sleep(60)
"""


def test_a_call_that_ignores_the_interrupt_ends_its_process_after_the_grace(tmp_path: Path) -> None:
    report = tmp_path / "report.txt"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", HARD_STAGE.format(report=str(report))], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == EXIT_HUNG, done.stderr
    assert time.monotonic() - started < 30
    assert report.read_text() == (
        "plugin 'native' broke rule 'returns-in-time': perturb did not return within 0.2 s, nor 1 s after it was "
        "interrupted (blocked in native code or ignoring the interrupt), so its process was ended")


# --- the supervisor of benchtool run ---------------------------------------------------------


def supervised(body: str, **kwargs) -> subprocess.Popen[str]:  # noqa: ANN003
    script = textwrap.dedent(f"""
        import os, sys, time
        from benchtool.supervisor import supervise
        def child():
        {textwrap.indent(textwrap.dedent(body), '    ')}
        sys.exit(supervise(child))
    """)
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def test_the_supervisor_returns_the_childs_code_and_names_an_early_end() -> None:
    ok = supervised("print('hello'); return 3")
    out, err = ok.communicate(timeout=60)
    assert (ok.returncode, out, err) == (3, "hello\n", "")
    died = supervised("os._exit(7)")
    _, err = died.communicate(timeout=60)
    assert died.returncode == 7
    assert err.splitlines()[0] == "benchtool run: the run's process ended outside any cell (exit code 7)"


def test_the_supervisor_passes_sigterm_on_and_ends_the_same_way() -> None:
    proc = supervised("print('ready', flush=True); time.sleep(60); return 0")
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM
    assert err == ""  # stopped from outside: not blamed on a cell


# --- the model snapshot: hooks and requires_grad -------------------------------------------


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2)).eval()


LEFTOVERS = {
    "forward hook": (lambda m: m[0].register_forward_hook(lambda *a: None),
                     "the forward hooks of module '0' were changed (0 before, 1 after)"),
    "forward pre-hook": (lambda m: m[2].register_forward_pre_hook(lambda *a: None),
                         "the forward pre-hooks of module '2' were changed (0 before, 1 after)"),
    "backward hook": (lambda m: m.register_full_backward_hook(lambda *a: None),
                      "the backward hooks of module '<root>' were changed (0 before, 1 after)"),
    "parameter hook": (lambda m: m[0].weight.register_hook(lambda grad: grad),
                       "the gradient hooks of parameter '0.weight' were changed (0 before, 1 after)"),
    "frozen parameter": (lambda m: m[2].bias.requires_grad_(False),
                         "requires_grad of the model's parameter '2.bias' was changed to False"),
    "global hook": (lambda m: nn.modules.module.register_module_forward_hook(lambda *a: None),
                    "the global forward hooks (torch.nn.modules.module.register_module_*_hook) were changed "
                    "(0 before, 1 after)"),
}


@pytest.mark.parametrize("leftover", sorted(LEFTOVERS))
def test_a_leftover_on_the_model_is_a_model_unchanged_failure_and_is_undone(leftover: str) -> None:
    net = model()
    snapshot = ModelSnapshot.take(net)
    x = torch.rand(4, 2, requires_grad=True)
    before = net(x)
    change, message = LEFTOVERS[leftover]
    change(net)
    violation = violation_of(snapshot.verify, net, "p")
    assert str(violation) == f"plugin 'p' broke rule 'model-unchanged': {message}"
    assert snapshot.unchanged(net) and snapshot.violation(net, "p") is None
    assert not nn.modules.module._global_forward_hooks
    after = net(x)
    assert torch.equal(before, after) and after.requires_grad
    after.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


class LeavesAHook(Attack):
    """Detaches every linear layer's output from then on (the poisoner of issue 15)."""

    name = "leaves-a-hook"
    norm = "linf"
    needs_gradients = False

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        for module in model.modules():
            if isinstance(module, nn.Linear):
                module.register_forward_hook(lambda _m, _i, output: output.detach())
        return x.clone()


class Raises(LeavesAHook):
    name = "raises"

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        model.model[0].weight.data.mul_(2)
        raise RuntimeError("this attack always crashes")


@pytest.mark.parametrize("broken, message", [
    (LeavesAHook(), "plugin 'leaves-a-hook' broke rule 'model-unchanged': the forward hooks of module '0' were "
                    "changed (0 before, 1 after)"),
    (Raises(), "plugin 'raises' raised RuntimeError: this attack always crashes"),
])
def test_an_attack_that_raises_or_leaves_a_hook_fails_and_the_model_is_restored(broken: Attack, message: str) -> None:
    net = model()
    reference = ModelSnapshot.take(net)
    x, y = torch.rand(5, 2), torch.tensor([0, 1, 0, 1, 0])
    assert str(violation_of(broken.sweep, net, x, y, [0.1], bounds=BOUNDS)) == message
    assert reference.unchanged(net)
    assert net(x.requires_grad_(True)).requires_grad  # what the next cell's gradient attack needs


class FreezesThenRaises(UncertaintyEstimator):
    name = "freezes-then-raises"

    def fit(self, task):
        task.model.requires_grad_(False)
        raise RuntimeError("this estimator always crashes")

    def sample(self, x):
        raise AssertionError("never sampled")


class HooksInSample(UncertaintyEstimator):
    name = "hooks-in-sample"

    def fit(self, task):
        pass

    def sample(self, x):
        self.task.model.register_forward_hook(lambda *a: None)
        return torch.softmax(self.task.model(x), -1)[None]


def test_an_estimator_that_raises_or_leaves_a_hook_fails_and_the_model_is_restored() -> None:
    task, test = conformance_task("classification")
    reference = ModelSnapshot.take(task.model)
    failure = violation_of(FreezesThenRaises().fit_checked, task)
    assert str(failure) == "plugin 'freezes-then-raises' raised RuntimeError: this estimator always crashes"
    assert reference.unchanged(task.model)
    estimator = HooksInSample()
    estimator.fit_checked(task)
    failure = violation_of(estimator.predict, test.x)
    assert str(failure).startswith("plugin 'hooks-in-sample' broke rule 'model-unchanged': the forward hooks of")
    assert reference.unchanged(task.model)


class Combines(LossWeighting):
    name = "combines"

    def combine(self, losses, shared):
        raise ValueError("no")

    def task_weights(self):
        return torch.ones(len(self.tasks))

    def after_step(self):
        while True:
            pass


class Evaluates(TargetFunction):
    name = "evaluates"
    domain = ((0.0, 1.0),)

    def evaluate(self, x):
        raise ZeroDivisionError("division by zero")


def test_loss_weightings_and_target_functions_are_guarded_too() -> None:
    weighting = Combines()
    weighting.start([TaskSpec("a", "regression"), TaskSpec("b", "regression")])
    failure = violation_of(weighting.total_loss, torch.ones(2, requires_grad=True))
    assert str(failure) == "plugin 'combines' raised ValueError: no"
    previous = _guard.set_policy(TimeoutPolicy(override=0.2))
    try:
        failure = violation_of(weighting.finish_step)
    finally:
        _guard.set_policy(previous)
    assert str(failure) == "plugin 'combines' broke rule 'returns-in-time': after_step did not return within 0.2 s"
    failure = violation_of(Evaluates(), torch.rand(3, 1))
    assert str(failure) == "plugin 'evaluates' raised ZeroDivisionError: division by zero"


class EndlessPasses(HooksInSample):
    """A lazy sample that never runs out of (valid) chunks."""

    name = "endless-passes"

    def sample(self, x):
        chunk = torch.softmax(self.task.model(x), -1)[None]
        while True:
            yield chunk


def test_a_lazy_sample_is_bounded_as_a_whole_not_per_chunk() -> None:
    task, test = conformance_task("classification")
    estimator = EndlessPasses()
    estimator.fit_checked(task)
    previous = _guard.set_policy(TimeoutPolicy(override=0.3))
    try:
        started = time.monotonic()
        failure = violation_of(estimator.predict, test.x)
    finally:
        _guard.set_policy(previous)
    assert str(failure) == "plugin 'endless-passes' broke rule 'returns-in-time': sample did not return within 0.3 s"
    assert time.monotonic() - started < 3


def test_a_hyperparameter_error_is_a_value_error_and_a_usage_error() -> None:
    assert issubclass(HyperparameterError, ValueError) and issubclass(HyperparameterError, UsageError)
