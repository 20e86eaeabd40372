"""`python -m devtools.faults`: the fault matrix (`--child`: one invocation in its own process)."""

import sys

from devtools.faults.scenarios import main

sys.exit(main(sys.argv[1:]))
