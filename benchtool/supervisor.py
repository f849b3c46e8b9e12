"""The supervisor of ``benchtool run``: a run that says which cell ended its process.

``benchtool run`` runs pytest in a forked child and waits for it (:func:`supervise`). The
child's watchdog plugin (:mod:`benchtool.watchdog`) rewrites a small file with the cell it is
running (a few microseconds per cell) and, when the guard's hard stage ends a hung plugin
call, leaves its message next to it. When the child dies before it finishes (``os._exit``,
a segfault, a hung call in native code) the supervisor prints the cell and the message;
every case finished before it is already in the results store. Forking costs no import and
no start-up time, so the common case costs nothing measurable; where forking is not safe
(no ``fork``, threads running, CUDA initialized, stdout captured in-process) the run stays
in-process, as before. The same files carry a hard stop's message from a pytest-xdist
worker to its controller.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable
from pathlib import Path

SUPERVISOR_ENV = "BENCHTOOL_SUPERVISOR_DIR"  # set in the child of a supervised ``benchtool run``
RUNNING_FILE = "running"  # the node id of the cell running now (empty between cells)
DONE_FILE = "done"  # the child's exit code, written when it ends normally
SI_KERNEL = 0x80  # si_code of a signal the kernel sent (the terminal's Ctrl-C goes to the whole group)
MIRRORED_SIGNALS = (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM))


def failure_file(directory: str | os.PathLike[str], nodeid: str) -> Path:
    """Where the hard stage leaves the message of the cell ``nodeid``."""
    return Path(directory) / f"failure-{hashlib.sha1(nodeid.encode()).hexdigest()[:20]}.txt"


def read_failure(directory: str | os.PathLike[str] | None, nodeid: str) -> str | None:
    if not directory or not nodeid:
        return None
    try:
        return failure_file(directory, nodeid).read_text().strip() or None
    except OSError:
        return None


def supervise(child_main: Callable[[], int], *, command: str = "run") -> int:
    """Run ``child_main`` in a forked child and return its exit code; when the child dies
    before it finishes, print which cell was running (and a hard stop's message).

    Signals sent to this process (SIGINT, SIGTERM, SIGHUP) are passed on to the child; the
    terminal's own (Ctrl-C) reach both, so those are not. A child killed by a signal is
    mirrored: this process ends by the same signal."""
    if not _can_fork():
        return child_main()
    directory = tempfile.mkdtemp(prefix="benchtool-run-")
    watched = {signal.SIGCHLD, *MIRRORED_SIGNALS}
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    try:
        pid = os.fork()
    except OSError:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
        shutil.rmtree(directory, ignore_errors=True)
        return child_main()
    if pid == 0:
        _child(child_main, directory, previous_mask)
    try:
        status, forwarded = _wait(pid, watched)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
    try:
        return _outcome(status, forwarded, directory, command)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _can_fork() -> bool:
    """Forking is safe and useful: POSIX, one thread, CUDA untouched, the real stdout/stderr."""
    if not (hasattr(os, "fork") and hasattr(signal, "sigwaitinfo") and hasattr(signal, "pthread_sigmask")):
        return False
    if threading.current_thread() is not threading.main_thread() or threading.active_count() != 1:
        return False
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        return False
    if os.environ.get("BENCHTOOL_SUPERVISE", "1") == "0":
        return False
    for stream, fd in ((sys.stdout, 1), (sys.stderr, 2)):
        try:
            if stream.fileno() != fd:
                return False
        except (AttributeError, OSError, ValueError):
            return False  # captured in-process (pytest's capsys, a notebook): its output must stay there
    return True


def _child(child_main: Callable[[], int], directory: str, mask: set[signal.Signals]) -> None:
    """The forked child: run, record that it ended normally, exit (never returns)."""
    code = 1
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.environ[SUPERVISOR_ENV] = directory
        code = child_main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            print(exc.code, file=sys.stderr)
    except KeyboardInterrupt:
        code = 128 + signal.SIGINT
    except BaseException:  # noqa: BLE001 - as the interpreter would: print it, exit 1
        traceback.print_exc()
    finally:
        try:
            Path(directory, DONE_FILE).write_text(str(code))
            atexit._run_exitfuncs()  # what a normal interpreter exit runs (stdio flushed below)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _wait(pid: int, watched: set[int]) -> tuple[int, set[int]]:
    """The child's wait status, and the signals passed on to it."""
    forwarded: set[int] = set()
    while True:
        info = signal.sigwaitinfo(watched)
        if info.si_signo == signal.SIGCHLD:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return status, forwarded
        elif info.si_code != SI_KERNEL:  # sent to this process by kill(): the child has not got it
            os.kill(pid, info.si_signo)
            forwarded.add(info.si_signo)


def _outcome(status: int, forwarded: set[int], directory: str, command: str) -> int:
    """The exit code to return (or this process's end, mirroring a signal), after saying
    which cell ended the child if it did not finish."""
    finished = Path(directory, DONE_FILE).exists()
    code = os.waitstatus_to_exitcode(status)
    if finished and code >= 0:
        return code
    killed = -code if code < 0 else None
    if killed is None or killed not in forwarded:
        cell = _read(Path(directory, RUNNING_FILE))
        cause = (f"exit code {code}" if killed is None else f"signal {signal.Signals(killed).name}")
        failure = read_failure(directory, cell)
        if failure is not None:
            lines = [f"cell {cell!r} failed: {failure}"]
        elif cell:
            lines = [f"cell {cell!r} ended the run's process ({cause}: os._exit, a crash in native code, or "
                     "a kill) before it finished"]
        else:
            lines = [f"the run's process ended outside any cell ({cause})"]
        lines.append("every case finished before it is kept in the results store; run the others with: "
                     "benchtool run --resume latest")
        sys.stdout.flush()
        for line in lines:
            print(f"benchtool {command}: {line}", file=sys.stderr)
        sys.stderr.flush()
    if killed is None:
        return code
    if killed in MIRRORED_SIGNALS or killed == signal.SIGKILL:
        if killed != signal.SIGKILL:
            signal.signal(killed, signal.SIG_DFL)
        os.kill(os.getpid(), killed)
    return 128 + killed


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
