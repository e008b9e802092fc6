"""``python -m gpubp`` and the ``gpubp`` command: the command-line tool, behind a Ctrl-C guard.

The guard imports nothing heavy itself, so a Ctrl-C while NumPy and the rest load (the first tenth
of a second or so) ends in one line and exit status 130, as it does later during training.
"""

import os
import signal
import sys
from types import FrameType

INTERRUPTED = "gpubp: interrupted\n"


def _on_interrupt(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C: a KeyboardInterrupt, as by default, except inside an import. There it can be raised in
    the import system's own lock callback, where the interpreter prints "Exception ignored ...
    Traceback" instead of letting it reach the guard; nothing has been written yet, so leave now."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            sys.stderr.write(INTERRUPTED)
            sys.stderr.flush()
            os._exit(130)
        frame = frame.f_back
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGINT, _on_interrupt)
    try:
        from .cli import main as command

        return command()
    except KeyboardInterrupt:
        sys.stderr.write(INTERRUPTED)
        sys.stderr.flush()
        return 130


if __name__ == "__main__":
    sys.exit(main())
