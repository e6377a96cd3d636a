"""``python -m rayparallel ...``: the same as the ``rayparallel`` command."""

from .cli import main

if __name__ == "__main__":
    main()
