"""Background jobs: Celery task adapters (thin, ids in, services do the work) and the queue
that runs them on Celery or on the in-process pool of embedded mode."""
