"""Snapshots shared by the pytest-xdist workers of one run: the first worker that needs a
local cluster of given settings builds it by the scripts and snapshots it into the run's
directory, holding a file lock; the other workers wait for the lock and restore copies
(~0.2 s each instead of a build of their own, which on two cores runs side by side with
the first and slows both).

The run's directory lies in the harness directory of the servers' account, named by
xdist's ``testrunuid`` and marked as owned by the controller (the workers' parent). The
workers report it to the controller, which removes it when the run ends; if the
controller is killed, the next session's sweep removes it like any dead session's root.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .backends import reaper
from .backends.accounts import run_account
from .backends.owners import owner_stamp
from .backends.sessions import OWNER_MARK, ROOT_PREFIX, default_base, harness_dir, provably_ours
from .cluster import Cluster, build_cluster
from .config import Settings
from .snapshots import ClusterSnapshot, can_snapshot, shape_key, take_snapshot

log = logging.getLogger("pytest_pgstandby")

RUN_PREFIX = ROOT_PREFIX + "run-"
#: in an xdist worker's ``workeroutput``: the run directories it used, for the controller
RUNS_OUTPUT = "pgstandby_runs"


def run_id(config: Any) -> str | None:
    """The xdist run this process is a worker of (None outside a worker)."""
    workerinput = getattr(config, "workerinput", None)
    return None if workerinput is None else str(workerinput.get("testrunuid") or "") or None


def run_dir(config: Any) -> Path:
    """This run's shared directory, made by the first worker that asks; reported to the
    controller through ``workeroutput``."""
    account = run_account()
    home = harness_dir(default_base(), account.uid, account.name)
    path = home / f"{RUN_PREFIX}{run_id(config)}"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o711)
    controller = owner_stamp(os.getppid())  # it outlives every worker
    with contextlib.suppress(FileExistsError):
        fd = os.open(path / OWNER_MARK, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w") as out:
            out.write(controller)
    used = config.workeroutput.setdefault(RUNS_OUTPUT, [])
    if str(path) not in used:
        used.append(str(path))
        # the controller removes it at its end; killed with its workers, their reapers do
        reaper.watch_after_owner(path, {os.geteuid(), account.uid}, controller)
    return path


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released by the kernel if this worker dies
        yield
    finally:
        os.close(fd)


def shared_cluster(config: Any, settings: Settings) -> Cluster:
    """A cluster of ``settings`` from the run's snapshot of its shape, which this call
    builds and takes when no worker did yet. Where the backend cannot snapshot, a note
    says so to every worker, which then builds its own."""
    run = run_dir(config)
    name = hashlib.sha256(repr(shape_key(settings)).encode()).hexdigest()[:16]
    meta = run / f"{name}.json"
    with _locked(run / f"{name}.lock"):
        if not meta.exists():
            built = build_cluster(settings)
            try:
                described = (
                    take_snapshot(built, into=run / name).describe()
                    if can_snapshot(built, into=run / name)
                    else None
                )
            except BaseException:
                built.close(keep=settings.keeps(failed=True))
                raise
            fd = os.open(meta, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # passwords
            with os.fdopen(fd, "w") as out:
                json.dump(described, out)
            return built
        described = json.loads(meta.read_text())
    if described is None:
        return build_cluster(settings)
    return ClusterSnapshot.described(settings, described).restore(settings)


def remove_runs(paths: list[str]) -> None:
    """In the controller, after its workers are down: the run directories they reported,
    each only if it is provably this process's."""
    uids = {os.geteuid(), run_account().uid}
    for path in dict.fromkeys(paths):
        run = Path(path)
        stamp = provably_ours(run, uids)
        if run.name.startswith(RUN_PREFIX) and stamp and stamp.split()[0] == str(os.getpid()):
            shutil.rmtree(run, ignore_errors=True)
        elif run.exists():
            log.warning("left %s in place: not provably made for this run", run)
