"""``python -m gpubp`` and the ``gpubp`` command: the command-line tool, behind a Ctrl-C guard.

The guard imports nothing heavy itself, so a Ctrl-C while NumPy and the rest load (the first tenth
of a second or so) ends in one line and exit status 130, as it does later during training.
"""

import sys


def main() -> int:
    try:
        from .cli import main as command

        return command()
    except KeyboardInterrupt:
        print("gpubp: interrupted", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
