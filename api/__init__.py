"""The HTTP API: a Flask app factory (`api.app.create_app`) with one blueprint per area."""
