"""SIGTERM / SIGINT (Slurm preemption, Ctrl-C) become a request to stop after the current step."""
import signal
import threading

from wesv.log import get_logger

log = get_logger("wesv.trainer")


class StopRequest:
    """Context manager: while active, the first SIGTERM/SIGINT sets ``signum``; a second SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def _handler(self, signum: int, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        log.warning("received %s: stopping after the current step and saving a checkpoint",
                    signal.Signals(signum).name)

    @property
    def requested(self) -> bool:
        """Whether a stop signal arrived."""
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        """The shell's convention for death by this signal (128 + number)."""
        return 128 + int(self.signum or 0)

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
