"""Run ``mcrgpu characterize``: python entrypoints/characterize.py --help."""

from mcrgpu.cli import characterize_main

if __name__ == "__main__":
    characterize_main()
