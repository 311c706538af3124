"""Entry point: `python -m retina_desktop`. Nothing heavy runs at import."""

from retina_desktop.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
