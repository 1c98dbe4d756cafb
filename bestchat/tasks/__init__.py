"""Background jobs: the Celery task adapters (thin: ids in, services do the work) and the
worker's registration of its generation slots. Only workers, and processes that run jobs
themselves (:mod:`bestchat.dispatch.in_process`), import them."""

# Imported by every worker (Celery ``include``) and by the in-process dispatcher: the tasks,
# and the worker's registration of its generation slots.
TASK_MODULES = ("bestchat.tasks.generation", "bestchat.tasks.worker_slots")
