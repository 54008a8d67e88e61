"""`python -m ganbench.train ARGS` = `ganbench train ARGS`; the entry point for torchrun."""

import sys

from ganbench.cli import app

if __name__ == "__main__":
    app(["train", *sys.argv[1:]], prog_name="ganbench")
