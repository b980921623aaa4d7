"""``wesv.lock``: one holder at a time, the holder's pid in the refusal, no stale lock after kill -9."""
import os
import signal
import subprocess
import sys

import pytest

from wesv.errors import WesvError
from wesv.lock import LockHeld, acquire, exclusive_lock, read_holder

_HOLD = """
import sys, time
from wesv.lock import acquire
acquire(sys.argv[1], "holding for a test")
print("locked", flush=True)
time.sleep(60)
"""


def test_second_taker_fails_naming_the_holder_then_gets_it_after_release(tmp_path):
    path = str(tmp_path / ".lock")
    with exclusive_lock(path, "writing shards") as lock:
        assert lock.held and read_holder(path).startswith(f"pid {os.getpid()} on ")
        with pytest.raises(LockHeld, match=rf"\.lock: locked by pid {os.getpid()} on .* \(writing shards\); wait"):
            acquire(path, "another writer")
    assert not lock.held and read_holder(path) == ""
    again = acquire(path, "another writer")
    assert "another writer" in read_holder(path)
    again.release()
    again.release()  # idempotent


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    path = str(tmp_path / ".lock")
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, path], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockHeld) as err:
            acquire(path, "me")
        assert f"pid {holder.pid} on" in str(err.value) and f"pid {holder.pid}" in err.value.holder
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with exclusive_lock(path, "me"):  # the kernel dropped the dead holder's lock
        assert read_holder(path).startswith(f"pid {os.getpid()} ")


def test_lock_creates_its_dir_and_an_unwritable_place_is_a_user_error(tmp_path):
    with exclusive_lock(str(tmp_path / "new" / ".lock"), "x"):
        assert (tmp_path / "new" / ".lock").is_file()
    (tmp_path / "file").write_text("not a dir")
    with pytest.raises(WesvError, match="cannot create the lock file"):
        acquire(str(tmp_path / "file" / ".lock"), "x")
