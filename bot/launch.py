"""Starting a job from the chat: the one place a handler creates a job. It checks the draft
once more, enforces one generation at a time, sends the progress message, commits the job row
and wakes the supervisor; it never calls KIE."""
from __future__ import annotations

from typing import Any

from telegram.ext import ContextTypes

from bot import wizard
from bot.context import deps_of
from config.catalogue import ModelSpec
from config.texts import text
from faults import crashpoint
from storage.jobs import NewJob, active_jobs, create_job, find_job


async def start_job(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int, lang: str, spec: ModelSpec,
                    given: dict[str, Any], request_key: str) -> bool:
    """Create the job (committed) with its progress message, then wake the supervisor.
    False when the user must wait for a running job first."""
    deps = deps_of(context)
    existing = find_job(deps.db, request_key)
    if existing is not None:
        if request_key.startswith("draft:"):      # a second tap on the same button
            deps.metrics.duplicates_suppressed.labels("button").inc()
            await context.bot.send_message(chat_id, text(lang, "already_started"))
        deps.notify_job(existing.id)               # else: this very update, handled again after a crash
        return True
    if len(active_jobs(deps.db, user_id)) >= deps.max_active_jobs:
        await context.bot.send_message(chat_id, text(lang, "busy"))
        return False
    job_input = spec.with_defaults(given)
    problems = wizard.draft_problems(spec, job_input)
    if problems:
        await context.bot.send_message(chat_id, text(lang, "bad_value", reason="; ".join(problems)))
        return False
    progress = await context.bot.send_message(chat_id, text(lang, "progress_queued", title=spec.name(lang)))
    job, created = create_job(deps.db, NewJob(
        request_key=request_key, chat_id=chat_id, user_id=user_id, lang=lang, model=spec.id,
        input=job_input, deadline_s=spec.deadline_s, progress_message_id=progress.message_id))
    if created:
        crashpoint("after_job_insert")
        deps.metrics.jobs_created.labels(spec.id).inc()
    deps.notify_job(job.id)
    return True
