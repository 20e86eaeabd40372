"""`python -m cbr_checkpointer`: the operators' command line (see `cbr_checkpointer.cli`)."""

import sys

from cbr_checkpointer.cli import main

sys.exit(main(prog="python -m cbr_checkpointer"))
