"""pytest-xdist's ``loadgroup`` scheduling, safe when a cell kills its worker.

xdist's own ``loadgroup`` puts a crashed worker's whole unfinished group back in the
queue, the crashed cell included: the next worker crashes on it again, and once the
restarts are spent the group's other cells never run and nobody says so. Here the cell
that crashed is reported failed (by xdist, as always) and only the rest of its group
is run again, on another worker.
"""

from __future__ import annotations

from xdist.scheduler import LoadGroupScheduling
from xdist.workermanage import WorkerController


class CrashSafeGroupScheduling(LoadGroupScheduling):
    """``--dist loadgroup``: cells of one ``xdist_group`` on one worker; a crash fails one cell."""

    def remove_node(self, node: WorkerController) -> str | None:
        workload = self.assigned_work.pop(node)
        unfinished = [(scope, nodeid) for scope, unit in workload.items() for nodeid, done in unit.items()
                      if not done]
        if not unfinished:
            return None
        scope, crashed = unfinished[0]  # a worker runs its cells in order: the first unfinished one killed it
        workload[scope][crashed] = True
        self.workqueue.update((s, unit) for s, unit in workload.items() if not all(unit.values()))
        for other in self.assigned_work:
            self._reschedule(other)
        return crashed
