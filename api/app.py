"""The app factory. Everything the app needs comes from the `Settings` it is given, never the environment."""

from __future__ import annotations

import logging

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from inferq.api import auth, limits
from inferq.api.context import SETTINGS_KEY, close_read_db
from inferq.api.errors import register_error_handlers
from inferq.api.metrics import AppMetrics
from inferq.api.routes import batches, embeddings, files, jobs, models, ops, ui, webhooks
from inferq.shared.settings import MIB, Settings, get_settings

log = logging.getLogger(__name__)

# Room for the multipart framing and the small form fields around an upload of the largest size.
MULTIPART_SLACK = 1 * MIB


class JSONProvider(DefaultJSONProvider):
    """JSON responses: fields in the order the serializers give them, UTF-8, and the charset said."""

    mimetype = "application/json; charset=utf-8"
    sort_keys = False
    ensure_ascii = False
    compact = True


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or get_settings()
    app = Flask(__name__, static_folder=None)
    app.json = JSONProvider(app)
    app.config[SETTINGS_KEY] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes + MULTIPART_SLACK
    app.url_map.strict_slashes = False
    register_error_handlers(app)
    app.teardown_request(close_read_db)
    AppMetrics(settings).install(app)
    auth.install(app, settings)
    limits.install(app, settings)
    for blueprint in (files.bp, jobs.bp, models.bp, ops.bp, batches.bp, embeddings.bp, webhooks.bp, ui.bp):
        app.register_blueprint(blueprint)
    return app
