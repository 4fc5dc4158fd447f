"""`python -m export CHECKPOINT_DIR OUT_DIR ...` is `parley export CHECKPOINT_DIR OUT_DIR ...`."""
import sys

from runtime.cli import main

sys.exit(main(["export", *sys.argv[1:]]))
