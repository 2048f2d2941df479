"""`python -m cli` is `kiebot`."""
from cli import main

main()
