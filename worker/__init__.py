"""Worker side: the streaming synthesis engine and (later) the worker processes that host it."""
