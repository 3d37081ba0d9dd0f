"""Placeholder replaced below."""
class TraceStream:  # noqa
    pass
