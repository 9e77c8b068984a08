import sys

from rcatune.registry.twins import main

sys.exit(main())
