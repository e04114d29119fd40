"""`python -m audiodream_server` = `audiodream serve`."""

from audiodream.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["serve", *__import__("sys").argv[1:]]))
