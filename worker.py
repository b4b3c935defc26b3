"""The worker: one client with the pydantic data converter, every workflow and activity."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from models.settings import GdSettings, get_settings

log = logging.getLogger("gd.worker")


def data_converter():
    """The one converter worker, CLI and replayer share (a payload codec plugs in here).

    With ``GD_CODEC_KEYS`` (or ``GD_CODEC_KEY``) set, payloads are encrypted with the
    AES-GCM codec of codec.py and failure messages/stack traces are moved into encoded
    attributes, so no personal data reaches the server in clear. Bad key variables raise
    ``codec.CodecConfigError`` here, at start-up."""
    import dataclasses

    from temporalio.converter import DefaultFailureConverterWithEncodedAttributes

    from codec import codec_from_env

    codec = codec_from_env()
    if codec is None:
        return pydantic_data_converter
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


async def connect(settings: GdSettings | None = None) -> Client:
    settings = settings or get_settings()
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.namespace,
        data_converter=data_converter(),
    )


def all_workflows() -> list[type]:
    from workflows.registry import ALL_WORKFLOWS

    return list(ALL_WORKFLOWS)


@dataclass
class Dependencies:
    store: object
    blobs: object
    settings: GdSettings


def build_dependencies(settings: GdSettings) -> Dependencies:
    from activities.blobs import BlobStore
    from activities.store import Store

    store = Store(settings.database_url)
    store.create_schema()
    return Dependencies(store=store, blobs=BlobStore(settings.blob_dir), settings=settings)


def all_activities(deps: Dependencies) -> list:
    from activities.deadlines import DeadlineActivities
    from activities.mail import MailActivities
    from activities.records import RecordActivities
    from activities.webhooks import WebhookActivities

    records = RecordActivities(deps.store, deps.blobs)
    mail = MailActivities(deps.store, deps.blobs, deps.settings)
    deadlines = DeadlineActivities()
    webhooks = WebhookActivities(deps.store)
    return [
        records.validate_intake,
        records.issue_numbers,
        records.record_transition,
        mail.send_email,
        mail.send_technician_credentials,
        deadlines.compute_deadline,
        deadlines.resume_deadline,
        webhooks.await_events,
        webhooks.deliver,
        webhooks.dead_letter,
    ]


def build_worker(
    client: Client,
    settings: GdSettings | None = None,
    *,
    deps: Dependencies | None = None,
    activities: list | None = None,
    task_queue: str | None = None,
    **worker_options,
) -> Worker:
    """One worker for every workflow and activity; ``worker_options`` go to ``Worker``
    (slot and poller tuning, interceptors)."""
    settings = settings or get_settings()
    if activities is None:
        activities = all_activities(deps or build_dependencies(settings))
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=all_workflows(),
        activities=activities,
        activity_executor=ThreadPoolExecutor(max_workers=16),
        **worker_options,
    )


class StartupRefused(SystemExit):
    """The worker will not start with these settings (the message says why, in pt-BR)."""


def check_startup(settings: GdSettings) -> None:
    """Outside GD_ENV=dev: refuse a remote relay in clear and payloads in clear."""
    from models.settings import startup_problems

    problems = startup_problems(settings)
    if problems:
        raise StartupRefused("worker não iniciado: " + "; ".join(problems))


async def run(settings: GdSettings | None = None) -> None:
    settings = settings or get_settings()
    check_startup(settings)
    client = await connect(settings)
    worker = build_worker(client, settings)
    log.info("worker polling task queue %s on %s", settings.task_queue, settings.temporal_address)
    await worker.run()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
