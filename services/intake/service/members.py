"""What applications are judged against: the program catalog, member cities, exchange rates."""

from __future__ import annotations

from services.intake.domain import rule
from services.intake.persistence import IntakeStore, RateRecord
from services.intake.schemas import (
    MemberCreate,
    MemberList,
    MemberUpdate,
    MemberView,
    ProgramList,
    ProgramView,
    RateList,
    RateView,
)
from services.intake.service.base import IntakeBase, actor
from shared.auth import Principal
from shared.contracts.money import MINOR_UNIT_EXPONENT, parse_rate
from shared.errors import ConflictError, InvalidError, NotFoundError, Problem
from shared.service import Work


class MembersAndRates(IntakeBase):
    # The program catalog ---------------------------------------------------------------

    def programs(self, *, limit: int, offset: int) -> ProgramList:
        today = self.now().date()
        # The catalog is a file loaded at start, not a table: its page is a slice.
        page = list(self.catalog.programs.values())[offset : offset + limit]
        return ProgramList(
            catalog_version=self.catalog.version,
            programs=[ProgramView.of(rules, today) for rules in page],
            total=len(self.catalog.programs),
            limit=limit,
            offset=offset,
        )

    def program(self, code: str) -> ProgramView:
        rules = self.catalog.get(code)
        if rules is None:
            raise NotFoundError(f"there is no program {code}")
        return ProgramView.of(rules, self.now().date())

    # Member cities -----------------------------------------------------------------------

    async def members(
        self, work: Work, principal: Principal, *, limit: int, offset: int
    ) -> MemberList:
        only = None if principal.is_officer else principal.member_id
        records, total = await IntakeStore(work.session).members(
            member_id=only, limit=limit, offset=offset
        )
        return MemberList(
            items=[MemberView.of(record) for record in records],
            total=total,
            limit=limit,
            offset=offset,
        )

    async def member(self, work: Work, principal: Principal, member_id: str) -> MemberView:
        return MemberView.of(await self.visible_member(work, principal, member_id))

    async def create_member(self, work: Work, member: MemberCreate) -> MemberView:
        store = IntakeStore(work.session)
        if await store.member(member.member_id) is not None:
            raise ConflictError(f"member {member.member_id} exists already")
        await store.insert_member(
            {
                **member.model_dump(mode="json"),
                "good_standing": True,
                "standing_reason": None,
                "standing_changed_at": None,
                "created_at": work.now,
                "updated_at": work.now,
            }
        )
        created = await store.member(member.member_id)
        assert created is not None
        return MemberView.of(created)

    async def update_member(
        self, work: Work, principal: Principal, member_id: str, changes: MemberUpdate
    ) -> MemberView:
        await self.visible_member(work, principal, member_id, for_update=True)
        values = changes.model_dump(mode="json", exclude_unset=True)
        for name, value in values.items():
            if value is None and name != "state":
                raise InvalidError.at(name, f"{name} cannot be empty", "rule")
        await IntakeStore(work.session).update_member(member_id, {**values, "updated_at": work.now})
        return await self.member(work, principal, member_id)

    # Exchange rates ----------------------------------------------------------------------

    async def rates(self, work: Work, *, limit: int, offset: int) -> RateList:
        records, total = await IntakeStore(work.session).rates(limit=limit, offset=offset)
        return RateList(
            items=[RateView.of(rate) for rate in records],
            total=total,
            limit=limit,
            offset=offset,
        )

    async def set_rate(
        self, work: Work, principal: Principal, from_currency: str, to_currency: str, rate: str
    ) -> RateView:
        problems: list[Problem] = [
            rule(name, f"{code} is not a currency this service knows (ISO-4217, e.g. KES)")
            for name, code in (("from_currency", from_currency), ("to_currency", to_currency))
            if code not in MINOR_UNIT_EXPONENT
        ]
        try:
            parse_rate(rate)
        except ValueError as error:
            problems.append(rule("rate", str(error)))
        if problems:
            raise InvalidError(problems)
        if from_currency == to_currency:
            # The rate of a currency to itself is 1, held by the service and never stored.
            raise ConflictError(f"{from_currency} converts to itself at 1; that rate is fixed")
        saved = RateRecord(from_currency, to_currency, rate, work.now, actor(principal))
        await IntakeStore(work.session).save_rate(saved)
        return RateView.of(saved)
