"""The `kiebot` command line (design.md section 5): run, demo, sim, migrate, models."""


def main() -> None:
    raise SystemExit("not yet")
