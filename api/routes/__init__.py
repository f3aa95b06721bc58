"""One blueprint per area: files, jobs, models, and the operations endpoints."""
