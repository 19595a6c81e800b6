"""The stages before the award: screening, partner confirmation, review rounds, decision.

Screening judges the submitted snapshot with the program's own rules, the ones intake
checked before submission; partner confirmation and review wait for people, with
deadlines, and ask a program officer when nobody answers.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

from workflows.funding.channel import CommandChannel

with workflow.unsafe.imports_passed_through():
    from shared.contracts import topics
    from shared.contracts.intake import PartnerCity, PartnerConfirmed
    from shared.contracts.review import ReviewCompleted, ReviewerRecused
    from shared.contracts.workflows import (
        ApplicationForReview,
        PartnerForReview,
        ReassignReview,
        RequestPartnerConfirmation,
        RequestReviews,
    )
    from workflows.funding import domain, patches
    from workflows.funding.models import Stage
    from workflows.funding.state import Command


class SelectionStages(CommandChannel):
    # -- 1. screening ---------------------------------------------------------------------

    def _screening_problems(self) -> list[str]:
        if workflow.patched(patches.SHARED_ELIGIBILITY_RULES):
            return domain.screening_problems(self._app)
        return patches.screen_before_shared_rules(self._app)

    # -- 2. partner confirmation ----------------------------------------------------------

    async def _partner_confirmation(self) -> bool:
        if self._app.other_partners and workflow.patched(patches.EVERY_PARTNER_CONFIRMS):
            return await self._every_partner_confirms()
        due = workflow.now() + self._rules.partner_confirmation_period
        partner = self._app.partner
        self._enter(
            Stage.PARTNER_CONFIRMATION,
            f"waiting for {partner.name} to confirm its participation",
            deadlines={"partner_confirmation_due": due},
        )
        command = self._send(
            topics.REQUEST_PARTNER_CONFIRMATION,
            "partner-confirmation",
            RequestPartnerConfirmation(
                command_id=self._command_id("partner-confirmation"),
                application_id=self._app.application_id,
                partner_city=partner.name,
                partner_contact_email=partner.contact_email,
                due_at=due,
            ),
        )
        confirmed = await self._wait(lambda: self._partner is not None, until=due)
        command.closed = True
        if not confirmed:
            self._enter(
                Stage.PARTNER_UNCONFIRMED,
                f"{partner.name} did not confirm by {due:%Y-%m-%d %H:%M} UTC; "
                "a program officer decides",
                escalation=(
                    "partner_unconfirmed",
                    f"{partner.name} did not confirm participation by {due}",
                ),
            )
            await self._wait(
                lambda: self._partner is not None or self._partner_decision is not None
            )
            if self._partner is None and self._partner_decision is not None:
                request = self._partner_decision
                self._partner_decision = None
                if request.value.proceed:
                    request.accept("the application proceeds to review")
                    return True
                request.accept("the application is declined")
                self._enter(Stage.DECLINED, f"partner never confirmed: {request.value.reason}")
                return False
        assert self._partner is not None
        if not self._partner.confirmed:
            note = f": {self._partner.note}" if self._partner.note else ""
            self._enter(Stage.DECLINED, f"{partner.name} declined to take part{note}")
            return False
        return True

    async def _every_partner_confirms(self) -> bool:
        """Each partner city confirms through its own link; the exchange needs them all."""
        due = workflow.now() + self._rules.partner_confirmation_period
        partners = self._app.every_partner()
        self._enter(
            Stage.PARTNER_CONFIRMATION,
            f"waiting for {_names(partners)} to confirm their participation",
            deadlines={"partner_confirmation_due": due},
        )
        commands = {
            partner.contact_email.lower(): self._send(
                topics.REQUEST_PARTNER_CONFIRMATION,
                "partner-confirmation",
                RequestPartnerConfirmation(
                    command_id=self._command_id("partner-confirmation", partner.contact_email),
                    application_id=self._app.application_id,
                    partner_city=partner.name,
                    partner_contact_email=partner.contact_email,
                    due_at=due,
                ),
            )
            for partner in partners
        }

        def answer(partner: PartnerCity) -> PartnerConfirmed | None:
            return self._partner_answers.get(partner.contact_email.lower())

        def settled() -> bool:
            answers = [answer(partner) for partner in partners]
            return all(answers) or any(a is not None and not a.confirmed for a in answers)

        def close_answered() -> None:
            for email, command in commands.items():
                if email in self._partner_answers:
                    command.closed = True

        in_time = await self._wait(settled, until=due)
        close_answered()
        if not in_time:
            silent = [partner for partner in partners if answer(partner) is None]
            self._enter(
                Stage.PARTNER_UNCONFIRMED,
                f"{_names(silent)} did not confirm by {due:%Y-%m-%d %H:%M} UTC; "
                "a program officer decides",
                escalation=(
                    "partner_unconfirmed",
                    f"{_names(silent)} did not confirm participation by {due}",
                ),
            )
            await self._wait(lambda: settled() or self._partner_decision is not None)
            close_answered()
            if not settled() and self._partner_decision is not None:
                for command in commands.values():
                    command.closed = True
                request = self._partner_decision
                self._partner_decision = None
                if request.value.proceed:
                    request.accept(f"the application proceeds to review without {_names(silent)}")
                    return True
                request.accept("the application is declined")
                self._enter(Stage.DECLINED, f"partner never confirmed: {request.value.reason}")
                return False
        for partner in partners:
            given = answer(partner)
            if given is not None and not given.confirmed:
                note = f": {given.note}" if given.note else ""
                self._enter(Stage.DECLINED, f"{partner.name} declined to take part{note}")
                return False
        return True

    # -- 3-4. review and decision ---------------------------------------------------------

    async def _decide(self) -> domain.Decision | None:
        """Review rounds, revisions and overrides until the application is awarded or ends."""
        decision: domain.Decision | None = None
        while True:
            if decision is None:
                self._review_round += 1
                decision = await self._review_round_outcome(self._review_round)
            if decision.outcome == "awarded":
                return decision
            if decision.outcome == "declined":
                decision = await self._declined(decision.reason)
                if decision is None:
                    return None
                continue
            outcome = await self._await_revision(decision.reason)
            if isinstance(outcome, domain.Decision):
                decision = outcome
            elif outcome == "lapsed":
                self._enter(
                    Stage.REVISION_LAPSED, "no revised application arrived before the deadline"
                )
                return None
            else:
                decision = None

    def _reviewers_needed(self, round_: int) -> int:
        """The program's number, plus the reviewers an officer added to the round."""
        return self._rules.reviewers_needed + self._added_reviewers.get(round_, 0)

    def _valid_reviews(self, round_: int) -> list[ReviewCompleted]:
        recused = self._recusals.get(round_, {})
        reviewers: dict[str, ReviewCompleted] = {}
        for review in self._reviews.get(round_, {}).values():
            if review.task_id not in recused and review.reviewer_id not in reviewers:
                reviewers[review.reviewer_id] = review
        return list(reviewers.values())[: self._reviewers_needed(round_)]

    def _enough_reviews(self, round_: int) -> bool:
        return len(self._valid_reviews(round_)) >= self._reviewers_needed(round_)

    def _heard_from_review(self, round_: int) -> bool:
        return round_ in self._reviews or round_ in self._recusals or round_ in self._short

    async def _review_round_outcome(self, round_: int) -> domain.Decision:
        rules = self._rules
        due = workflow.now() + rules.review_period
        needed = rules.reviewers_needed
        self._enter(
            Stage.REVIEW,
            f"review round {round_}: {needed} review(s) requested",
            deadlines={"review_due": due},
        )
        command = self._request_reviews(round_, needed, due, key=None)
        handled_recusals: dict[str, None] = {}
        escalated_short = False
        # Reviews of the round were heard before an officer added a reviewer, so hearing
        # from review says nothing of the added request: it is sent again at each deadline.
        widened = False
        timeouts = 0

        def new_recusals() -> list[ReviewerRecused]:
            return [
                recusal
                for task_id, recusal in self._recusals.get(round_, {}).items()
                if task_id not in handled_recusals
            ]

        def progress() -> bool:
            return (
                self._override is not None
                or self._enough_reviews(round_)
                or bool(new_recusals())
                or (round_ in self._short and not escalated_short)
                or (not command.closed and self._heard_from_review(round_))
            )

        while True:
            in_time = await self._wait(progress, until=None if escalated_short else due)
            if self._heard_from_review(round_):
                command.closed = True
            if self._override is not None:
                command.closed = True
                return self._take_override()
            if self._enough_reviews(round_):
                command.closed = True
                reviews = self._valid_reviews(round_)
                disagreement = domain.wide_spread(rules, reviews)
                if disagreement is not None and workflow.patched(patches.WIDE_SPREAD_TO_OFFICER):
                    settled = await self._officer_settles_spread(round_, disagreement)
                    if isinstance(settled, domain.Decision):
                        return settled
                    due = workflow.now() + rules.review_period
                    self._enter(Stage.REVIEW, settled, deadlines={"review_due": due})
                    command = self._request_reviews(
                        round_, self._reviewers_needed(round_), due, key="added"
                    )
                    widened = True
                    continue
                return domain.decide(
                    rules, reviews, requested=self._requested, revisions_so_far=self._revision
                )
            for recusal in new_recusals():
                handled_recusals[recusal.task_id] = None
                if recusal.replacement_task_id is None:
                    self._reassign(
                        round_,
                        f"reviewer recused: {recusal.reason}",
                        task_id=recusal.task_id,
                        key=recusal.task_id,
                    )
                due = max(due, workflow.now() + rules.review_period)
                self._enter(
                    self._stage,
                    f"a reviewer recused ({recusal.reason}); the task was reassigned",
                    deadlines={"review_due": due},
                )
            if round_ in self._short and not escalated_short:
                escalated_short = True
                short = self._short[round_]
                self._enter(
                    Stage.REVIEWERS_SHORT,
                    f"only {short.assigned} of {short.needed} eligible reviewers; "
                    "a program officer must step in",
                    escalation=(
                        "reviewers_short",
                        f"round {round_}: {short.assigned} of {short.needed} reviewers available",
                    ),
                )
            elif not in_time and not escalated_short:
                timeouts += 1
                if not command.closed or widened:
                    # Nothing heard for the round at all: the request itself may be lost.
                    self._transmit(command)
                self._reassign(
                    round_, "review deadline passed", task_id=None, key=f"late-{timeouts}"
                )
                due = workflow.now() + rules.review_period
                late = timeouts == domain.REVIEW_TIMEOUTS_BEFORE_ESCALATION
                self._enter(
                    Stage.REVIEW,
                    "review deadline passed: late reviews reassigned",
                    deadlines={"review_due": due},
                    escalation=(
                        "reviews_late",
                        f"round {round_}: the review deadline passed {timeouts} times",
                    )
                    if late
                    else None,
                )

    def _request_reviews(self, round_: int, needed: int, due: datetime, key: str | None) -> Command:
        """Ask review for ``needed`` reviews of the round (again, with more, under ``key``)."""
        app, rules = self._app, self._rules
        parts = (str(round_),) if key is None else (str(round_), key, str(needed))
        return self._send(
            topics.REQUEST_REVIEWS,
            "review",
            RequestReviews(
                command_id=self._command_id("review", *parts),
                application_id=app.application_id,
                round=round_,
                reviews_needed=needed,
                due_at=due,
                member_id=app.member_id,
                member_city=app.member_name,
                program_code=rules.code,
                focus_area=app.focus_area,
                partner_city=app.partner.name,
                partner_country=app.partner.country,
                blind_review=rules.blind_review,
                title=app.title,
                summary=self._summary(),
                requested=self._requested,
                rubric=rules.rubric,
                application=self._for_review(),
            ),
        )

    def _for_review(self) -> ApplicationForReview:
        """The application under review: a revision brings its own budget."""
        app = self._app
        revised = self._resubmissions.get(self._revision)
        return ApplicationForReview(
            objectives=app.objectives,
            exchange_start=app.exchange_start,
            exchange_end=app.exchange_end,
            adults=app.adults,
            youth=app.youth,
            partners=[
                PartnerForReview(name=partner.name, country=partner.country)
                for partner in app.every_partner()
            ],
            budget_lines=revised.budget_lines if revised else app.budget_lines,
            matching_cash=app.matching_cash,
            matching_in_kind=app.matching_in_kind,
        )

    async def _officer_settles_spread(
        self, round_: int, disagreement: str
    ) -> domain.Decision | str:
        """The reviewers disagree too much: an officer awards, declines or adds a reviewer.

        The officer's decision, or why the round goes on: another reviewer was asked for,
        whose review joins the round's.
        """
        self._spread_round = round_
        self._enter(
            Stage.REVIEW,
            f"round {round_}: {disagreement}; a program officer decides",
            escalation=("wide_score_spread", f"round {round_}: {disagreement}"),
        )
        await self._wait(lambda: self._override is not None)
        self._spread_round = None
        request = self._override
        assert request is not None
        if request.value.outcome != "another_review":
            return self._take_override()
        self._override = None
        self._added_reviewers[round_] = self._added_reviewers.get(round_, 0) + 1
        who = f" by {request.value.officer}" if request.value.officer else ""
        request.accept(f"another reviewer asked{who}")
        return f"round {round_}: another reviewer asked{who}: {request.value.reason}"

    def _reassign(self, round_: int, reason: str, *, task_id: str | None, key: str) -> None:
        """Move one task to another reviewer (``task_id``), or every late task of the round."""
        self._send(
            topics.REASSIGN_REVIEW,
            "reassign",
            ReassignReview(
                command_id=self._command_id("reassign", str(round_), key),
                application_id=self._app.application_id,
                round=round_,
                reason=reason,
                task_id=task_id,
            ),
            expects_answer=False,
        )

    def _take_override(self) -> domain.Decision:
        request = self._override
        assert request is not None
        self._override = None
        override = request.value
        # The validator admits another reviewer only while _officer_settles_spread waits.
        assert override.outcome != "another_review"
        award = None
        if override.outcome == "awarded":
            award = override.award or domain.award_for(self._requested, self._rules)
        request.accept(f"decision overridden: {override.outcome}")
        who = f" by {override.officer}" if override.officer else ""
        return domain.Decision(
            override.outcome, None, award, f"officer override{who}: {override.reason}"
        )

    async def _declined(self, reason: str) -> domain.Decision | None:
        """Declined; an officer may still override until the window closes."""
        window_end = workflow.now() + self._rules.review_period
        self._enter(Stage.DECLINED, reason, deadlines={"override_window_ends": window_end})
        if await self._wait(lambda: self._override is not None, until=window_end):
            return self._take_override()
        return None

    async def _await_revision(self, reason: str) -> domain.Decision | str:
        due = workflow.now() + self._rules.revision_period
        self._enter(
            Stage.REVISION_REQUESTED,
            reason,
            deadlines={"revision_due": due},
            action=f"revise and resubmit the application by {due:%Y-%m-%d %H:%M} UTC",
        )
        expected = self._revision + 1

        def resubmitted() -> bool:
            return any(revision >= expected for revision in self._resubmissions)

        def arrived() -> bool:
            return resubmitted() or self._override is not None

        halfway = workflow.now() + self._rules.revision_period / 2
        if not await self._wait(arrived, until=halfway):
            self._remind("revision_due", due, "the revised application is due soon")
        if not await self._wait(arrived, until=due):
            return "lapsed"
        if self._override is not None:
            return self._take_override()
        revision = max(revision for revision in self._resubmissions if revision >= expected)
        resubmission = self._resubmissions[revision]
        self._revision = revision
        self._requested = resubmission.requested
        return "resubmitted"

    def _summary(self) -> str:
        if self._revision in self._resubmissions:
            return self._resubmissions[self._revision].summary
        return self._app.summary


def _names(partners: list[PartnerCity]) -> str:
    names = [partner.name for partner in partners]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
