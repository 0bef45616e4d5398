"""`python -m advnorm` (and `torchrun -m advnorm`) runs the CLI."""

from advnorm.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
