"""The storage engine: catalog, offline tables, query engine and ingest.

Nothing in this package imports a surface (widgets, magics, server) or a heavy optional
dependency at module level.
"""
