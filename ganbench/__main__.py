"""`python -m ganbench ARGS` = `ganbench ARGS`; also what `torchrun -m ganbench eval ...` runs on every rank."""

from ganbench.cli import app

if __name__ == "__main__":
    app(prog_name="ganbench")
