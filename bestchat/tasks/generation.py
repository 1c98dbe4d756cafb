"""The generation Celery task (:data:`bestchat.dispatch.GENERATE_TASK`): a thin adapter around
the generation service.

Late acknowledgement plus ``reject_on_worker_lost``: a job taken but not started by a worker
that shuts down goes back on the queue. A job whose worker dies is not redelivered (no
``ack_emulation``, see :mod:`bestchat.celery_app`): the reaper ends its answer; a job that
runs for an answer already ``streaming`` marks it ``interrupted`` instead of starting over.
However the job ends, its generation stops counting as in flight
(:mod:`bestchat.services.admission`), and a library the job imported (a provider's heavy
dependency, at its first answer) is frozen out of the collector's full passes
(:func:`bestchat.gc_freeze.freeze_new_imports`). Each job first applies the site settings an admin changed
since (:func:`bestchat.services.site_settings.refresh`: usually one clock compare).
"""

from celery import shared_task

from bestchat.dispatch import GENERATE_TASK
from bestchat.gc_freeze import freeze_new_imports
from bestchat.services import generation
from bestchat.services import site_settings
from bestchat.services.admission import release_quietly


@shared_task(name=GENERATE_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def generate(message_id: str) -> None:
    try:
        site_settings.refresh()  # settings (and blocked plugins) changed in another process
        generation.generate(message_id)
    finally:
        release_quietly(message_id)
        freeze_new_imports()
