"""`python -m runtime.cli`: the `switchboard` command."""
import sys

from runtime.cli.main import main

sys.exit(main())
