"""The data: every face dataset as one table format, read into one ``Dataset``.

:mod:`~finefcace.sources.table` (the table format), :mod:`~finefcace.sources.images` (reading
and checking images), :mod:`~finefcace.sources.image_cache` (every image decoded once, before
training), :mod:`~finefcace.sources.transforms` (the paper's transforms),
:mod:`~finefcace.sources.dataset` (the ``Dataset`` and its loader),
:mod:`~finefcace.sources.splits` (seeded splits a release does not ship),
:mod:`~finefcace.sources.duplicates` (byte-identical images), the adapters of the official
releases (:mod:`~finefcace.sources.fairface`, :mod:`~finefcace.sources.utkface`,
:mod:`~finefcace.sources.lfwa`, :mod:`~finefcace.sources.celeba`, sharing
:mod:`~finefcace.sources.releases`, dispatched by :mod:`~finefcace.sources.adapters` and
finished by :mod:`~finefcace.sources.preparation`) and the synthetic faces
(:mod:`~finefcace.sources.synthetic`); each adapter states its dataset's licence, gathered by
:mod:`~finefcace.sources.licences`. The data imports neither the training engine nor the course.
"""
