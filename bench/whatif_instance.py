"""`kiebot run` with one what-if applied, for comparison runs only: storage.db.Database gets a
connection pool that keeps its connections and makes a caller wait for a free one
(bench.common.keep_connections) instead of kiebot's ThreadedConnectionPool(0, 32), which opens a
connection per transaction and raises "connection pool exhausted" when 32 are busy.
Nothing else differs from `python -m cli run`."""
from __future__ import annotations

from typing import Any

import storage.db
from bench.common import _blocking_pool


def _get_pool(self: Any) -> Any:
    return _blocking_pool(self)


storage.db.Database._get_pool = _get_pool  # type: ignore[method-assign]

if __name__ == "__main__":
    from cli import main

    main(["run"])
