"""The exp dir of a run: locked for the whole run, cleaned of torn temp files, removed if the start fails."""
import os
import shutil

from wesv.distributed import DistEnv, all_gather_objects
from wesv.errors import WesvError
from wesv.lock import Lock, acquire
from wesv.log import get_logger
from wesv.trainer.checkpoint import remove_stale_temps

log = get_logger("wesv.trainer")

LOCK_NAME = ".lock"


class RunDir:
    """``open()`` creates and locks ``exp_dir`` (rank 0 holds ``exp/.lock``); ``close(started)`` releases it.

    Under DDP only rank 0 takes the lock and every rank learns the outcome, so ranks of one job never lock each
    other out and a refused job stops on every rank at once. A run that fails before training started removes
    what it created (a new exp dir entirely, else the new entries in it), never what was there before.
    """

    def __init__(self, exp_dir: str, env: DistEnv):
        self.exp_dir, self.env = exp_dir, env
        self.lock: Lock | None = None
        self._new_dir = False
        self._before: set[str] = set()

    def open(self) -> None:
        """Create the dir and take the lock; ``WesvError`` on every rank when another run holds it."""
        error = None
        if self.env.is_main:
            self._new_dir = not os.path.isdir(self.exp_dir)
            self._before = set() if self._new_dir else set(os.listdir(self.exp_dir))
            try:
                os.makedirs(self.exp_dir, exist_ok=True)
                self.lock = acquire(os.path.join(self.exp_dir, LOCK_NAME), f"training into {self.exp_dir}")
            except WesvError as err:
                self._new_dir, self._before, error = False, set(), str(err)  # nothing here is ours to remove
            except OSError as err:
                self._new_dir, error = False, f"{self.exp_dir}: cannot create the exp dir ({err.strerror})"
        error = all_gather_objects(error)[0]
        if error:
            raise WesvError(error)
        if self.env.is_main:
            ckpt_dir = os.path.join(self.exp_dir, "checkpoints")
            for path in remove_stale_temps(self.exp_dir, ckpt_dir):
                log.info("removed %s (left by a process killed while writing it)", path)

    def close(self, started: bool) -> None:
        """Release the lock; before that, if the run never started training, remove what it created."""
        if self.lock is None:
            return
        try:
            if not started:
                if self._new_dir:
                    shutil.rmtree(self.exp_dir, ignore_errors=True)
                else:
                    for name in set(os.listdir(self.exp_dir)) - self._before:
                        path = os.path.join(self.exp_dir, name)
                        shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)
        finally:
            self.lock.release()
            self.lock = None
