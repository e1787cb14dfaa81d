"""Optional C extensions, built by setup.py when a C compiler is available.

Nothing is imported here: each user imports its extension (e.g. ``pointseg._native._parse``)
inside a ``try`` and falls back to its numpy / pandas path when it is missing.
"""
