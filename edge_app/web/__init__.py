"""The browser side of `digits serve`: the Starlette app (`app.py`, needs the `serve` extra) and its page (`static/`)."""
