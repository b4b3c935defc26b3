"""The `gd` command line: the entry point the project's layout names
(`gd = "starter_cli:main"`, `python -m starter_cli`). The commands live in the `cli`
package, one module per group of people who use them (see `cli/__init__.py`)."""

from cli.app import app, main

__all__ = ["app", "main"]

if __name__ == "__main__":
    main()
