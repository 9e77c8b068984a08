import sys

from rcatune.registry.cli import main

sys.exit(main())
