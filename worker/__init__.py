"""The Celery side: plan a job into parts, run parts on a model, finalize, reconcile."""
