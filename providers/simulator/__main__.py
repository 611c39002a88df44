import sys

from providers.simulator.cli import main

sys.exit(main())
