"""The ``bestchat.generate`` Celery task: a thin adapter around the generation service.

Late acknowledgement plus ``reject_on_worker_lost``: a job whose worker dies is redelivered,
and the service then marks the half-written message ``interrupted`` instead of starting over.
However the job ends, its generation stops counting as in flight
(:mod:`bestchat.services.admission`).
"""

from celery import shared_task

from bestchat.services import generation
from bestchat.services.admission import release_quietly


@shared_task(name="bestchat.generate", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def generate(message_id: str) -> None:
    try:
        generation.generate(message_id)
    finally:
        release_quietly(message_id)
