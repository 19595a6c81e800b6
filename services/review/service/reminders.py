"""Reminders: a reviewer hears once, a little before a task is due."""

from __future__ import annotations

from services.review.persistence import ReviewStore
from services.review.service.staffing import MAIL_REMINDER, mail_reviewer, mail_title
from shared.service import Service, Work


class Reminders(Service):
    async def remind_due(self, work: Work) -> int:
        """Queue a reminder for each open task that reached its reminder time."""
        store = ReviewStore(work.session)
        due = await store.tasks_to_remind(work.now)
        for task in due:
            request = (await store.task_record(task)).request
            reviewer = await store.reviewer(task.reviewer_id)
            assert reviewer is not None
            await store.mark_reminded(task.id, work.now)
            await mail_reviewer(
                work,
                reviewer,
                request,
                subject=f"Reminder: review due {task.due_at:%Y-%m-%d %H:%M} UTC",
                body=(
                    f"your review of {mail_title(request)} (task {task.id}) is due on "
                    f"{task.due_at:%Y-%m-%d %H:%M} UTC.\n"
                    f"Open it in your review inbox: /inbox/tasks/{task.id}\n"
                ),
                kind=MAIL_REMINDER,
            )
        return len(due)
