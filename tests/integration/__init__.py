"""Integration tests: the API and shared modules against real Postgres, Redis and a moto S3 server."""
