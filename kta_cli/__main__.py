"""`python -m kta_cli ...` and `torchrun -m kta_cli ...` enter here."""

from kta_cli.cli import main

if __name__ == "__main__":
    main()
