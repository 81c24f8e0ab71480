"""Dataset preparation commands (thin wrappers around :mod:`finefcace.sources`: the adapters,
the image checks and the synthetic faces).

One command, one sub-command per dataset::

    python -m data_prep fairface --root ~/data/fairface --out data/tables

A real dataset's command checks the download (expected label files and counts, missing and —
with ``--decode`` — unreadable images), writes the dataset table ``<out>/<dataset>.csv`` and a
report ``<out>/<dataset>_report.json``, and can cache resized copies of the images
(``--cache-size``). ``python -m data_prep synthetic --out data/synthetic`` renders the
synthetic faces. Introduced in the book in ``notebooks/01_dataset_preparation.ipynb``.
"""
