"""What the API and the workers share: settings, database, storage, job states, records."""
