"""Running git: the one place benchtool calls it (run metadata, ``bench-compare``'s worktrees)."""

from __future__ import annotations

import os
import subprocess

from benchtool.errors import UsageError, last_line


def git(cwd: str | os.PathLike[str], *args: str, timeout: float = 120) -> str:
    """``git -C cwd args...``'s stripped output; a UsageError naming the command and git's
    last line of stderr when it fails, or when git cannot run at all."""
    command = f"git {' '.join(args)}"
    try:
        done = subprocess.run(["git", "-C", os.fspath(cwd), *args], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as exc:
        raise UsageError(f"{command} could not run in {os.fspath(cwd)}: {exc}") from None
    if done.returncode != 0:
        raise UsageError(f"{command} failed in {os.fspath(cwd)}: {last_line(done.stderr)}")
    return done.stdout.strip()
