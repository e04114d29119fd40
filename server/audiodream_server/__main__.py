"""`python -m audiodream_server` = `audiodream serve`."""

import sys

from .commands import serve_main

if __name__ == "__main__":
    raise SystemExit(serve_main(sys.argv[1:]))
