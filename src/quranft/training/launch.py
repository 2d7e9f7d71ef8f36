"""One training process per device under Slurm, and the order the processes prepare in.

Under Slurm, Lightning takes the world size from the job's tasks (SLURMEnvironment: SLURM_NTASKS,
SLURM_PROCID), and never starts processes itself: a job that trains on N devices must run N
tasks. The Slurm executor starts each job as a single task (`srun -n1 ... snakemake`), so the
training command starts its own N tasks inside the job's allocation with
`srun --overlap --ntasks=N`, one per device (the profile asks sbatch for them: one task per GPU,
or `tasks` on the CPU), and each task runs the same command. Outside Slurm, Lightning starts the
extra processes itself, after the first has prepared.

The tasks of one srun start together, so rank 0 alone decides what the run resumes from (it may
move stale checkpoints aside); the other ranks wait for its word in a small file, then find the
same resume point. What each rank trained on is recorded by quranft.training.dataloading.SamplesSeen.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

log = logging.getLogger("quranft")

TASK_MARK = "QURANFT_SLURM_TASK"  # set in the tasks this module starts: they never start more


def srun_command(world_size: int, devices_per_node: int, num_nodes: int, threads: int,
                 argv: list[str]) -> list[str] | None:
    """The srun command line that re-runs `python -m quranft <argv>` as one Slurm task per
    device, or None where no such launch is due (not in a Slurm job, one process, or already
    a task)."""
    if world_size <= 1 or "SLURM_JOB_ID" not in os.environ or os.environ.get(TASK_MARK):
        return None
    return ["srun", "--overlap", f"--ntasks={world_size}", f"--ntasks-per-node={devices_per_node}",
            f"--nodes={num_nodes}", f"--cpus-per-task={task_cpus() or max(1, threads // devices_per_node)}",
            "--kill-on-bad-exit=1", "--export=ALL", sys.executable, "-m", "quranft", *argv]


def task_cpus() -> int | None:
    """The CPUs of each of this Slurm job's tasks (sbatch --cpus-per-task), or None outside Slurm.

    The job asks for them per task: a job of N tasks (one per device) holds N times the rule's
    threads, and each of its training processes gets the rule's threads (not a share of them), so
    that none of the CPUs the job holds stands idle.
    """
    value = os.environ.get("SLURM_CPUS_PER_TASK") if "SLURM_JOB_ID" in os.environ else None
    return int(value) if value and value.isdigit() and int(value) > 0 else None


def relaunch_as_tasks(command: list[str]) -> None:
    """Replace this process with `command` (srun), marking its tasks; srun's exit status (any
    rank failing fails it) becomes the job's."""
    log.info("starting one Slurm task per device: %s", " ".join(command))
    os.environ[TASK_MARK] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(command[0], command)


def slurm_task_rank() -> int | None:
    """This process's global rank when it is one of the Slurm tasks started above, else None."""
    if os.environ.get(TASK_MARK) and "SLURM_PROCID" in os.environ:
        return int(os.environ["SLURM_PROCID"])
    return None


def _ready_file(out_dir: Path) -> Path:
    step = f"{os.environ.get('SLURM_JOB_ID', 'local')}.{os.environ.get('SLURM_STEP_ID', '0')}"
    return out_dir / f".prepared.{step}.json"


def announce_prepared(out_dir: Path, resume_step: int | None) -> Path:
    """Rank 0: the run is prepared (manifests written, checkpoints decided)."""
    path = _ready_file(out_dir)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"resume_step": resume_step}), encoding="utf-8")
    tmp.replace(path)
    return path


def wait_until_prepared(out_dir: Path, timeout: float = 1800.0, poll: float = 0.5) -> dict:
    """Ranks above 0: wait for rank 0's word, then prepare the same way (nothing is left to move)."""
    path = _ready_file(out_dir)
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path}: rank 0 did not finish preparing within {timeout:.0f} s")
        time.sleep(poll)
    return json.loads(path.read_text(encoding="utf-8"))
