"""`python -m rcatune.api [--host H] [--port P] [KEY=VALUE ...]`: the control API (as `rcatune api`)."""

import sys

from rcatune.api.cli import main

if __name__ == "__main__":
    sys.exit(main(["api", *sys.argv[1:]]))
