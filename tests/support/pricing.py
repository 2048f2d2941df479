"""Price files for tests: the shipped one with a roomier free tier, for tests that make more
Z-Image generations than the shipped three a day (a fourth would ask to confirm a price)."""
from __future__ import annotations

import json
from pathlib import Path

from config.pricing import PRICING_PATH


def roomy_pricing(folder: Path, free_per_day: int = 100) -> str:
    """Write the shipped price file with `free_per_day` free Z-Image generations into `folder`
    and return its path (for KIEBOT_PRICING)."""
    prices = json.loads(PRICING_PATH.read_text(encoding="utf-8"))
    prices["free_tier"] = {"z-image": free_per_day}
    path = folder / "pricing.json"
    path.write_text(json.dumps(prices), encoding="utf-8")
    return str(path)
