"""Run ``mcrgpu match``: python entrypoints/match.py --help."""

from mcrgpu.cli import match_main

if __name__ == "__main__":
    match_main()
