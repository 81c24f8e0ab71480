"""Cost benchmarks of FineFACE (``python benchmarks/run.py``); results feed the book's cost chapter."""
