"""inferq tests: unit/ (no servers, SQLite at most), integration/ (real Postgres, Redis, moto S3),
e2e/ (real inferq processes). Shared fixtures are documented in tests/conftest.py."""
