"""Run ``mcrgpu reconstruct``: python entrypoints/reconstruct.py --help."""

from mcrgpu.cli import reconstruct_main

if __name__ == "__main__":
    reconstruct_main()
