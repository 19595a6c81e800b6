"""Demo data, so that the tokens ``grantflow up`` prints see something at once.

Seeding adds what is missing and never changes what exists, so program officers' edits
survive a restart. It runs outside production only (see ``IntakeSettings``).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import IntegrityError

from services.intake.persistence import IntakeStore, RateRecord
from shared.service import Service

logger = logging.getLogger(__name__)

SEED_ACTOR = "seed"


def _member(
    member_id: str,
    name: str,
    state: str,
    contact: tuple[str, str],
    sister_cities: list[tuple[str, str]],
    *,
    active: bool = True,
    good_standing: bool = True,
    standing_reason: str | None = None,
) -> dict[str, Any]:
    return {
        "member_id": member_id,
        "name": name,
        "state": state,
        "country": "US",
        "contacts": [{"name": contact[0], "email": contact[1], "role": "sister cities program"}],
        "sister_cities": [{"name": city, "country": country} for city, country in sister_cities],
        "membership_active": active,
        "good_standing": good_standing,
        "standing_reason": standing_reason,
    }


DEMO_MEMBERS: list[dict[str, Any]] = [
    _member(
        "demo-member-1",
        "Denver",
        "CO",
        ("Ana Ruiz", "international@denver.example.org"),
        [
            ("Nairobi", "KE"),
            ("Kunming", "CN"),
            ("Cuernavaca", "MX"),
            ("Takayama", "JP"),
            ("Axum", "ET"),
        ],
    ),
    _member(
        "demo-member-2",
        "Tucson",
        "AZ",
        ("Luis Ortega", "sistercities@tucson.example.org"),
        [("Hermosillo", "MX"), ("Guadalajara", "MX"), ("Liupanshui", "CN")],
    ),
    _member(
        "demo-member-3",
        "Charlotte",
        "NC",
        ("Dana Brooks", "global@charlotte.example.org"),
        [("Kumasi", "GH"), ("Baoding", "CN"), ("Arequipa", "PE")],
        good_standing=False,
        standing_reason="report_overdue",
    ),
    _member(
        "demo-member-4",
        "Seattle",
        "WA",
        ("Mei Tanaka", "sistercities@seattle.example.org"),
        [("Mombasa", "KE"), ("Chongqing", "CN"), ("Kobe", "JP"), ("Cebu", "PH")],
    ),
    _member(
        "demo-member-5",
        "Dayton",
        "OH",
        ("Chris Hall", "international@dayton.example.org"),
        [("Monrovia", "LR"), ("Holon", "IL")],
        active=False,
    ),
]

# Program-currency units per unit of the local currency (late-2026 reference values);
# program officers keep them current through PUT /v1/exchange-rates.
DEMO_RATES_TO_USD: dict[str, str] = {
    "KES": "0.0077",
    "CNY": "0.1385",
    "MXN": "0.0520",
    "ZAR": "0.0550",
    "GHS": "0.0670",
    "NGN": "0.00065",
    "ETB": "0.0071",
    "TZS": "0.00040",
    "UGX": "0.00027",
    "CAD": "0.7200",
    "JPY": "0.0066",
    "INR": "0.0115",
    "PHP": "0.0172",
    "VND": "0.000039",
    "KRW": "0.00071",
    "IDR": "0.0000615",
    "THB": "0.0290",
    "EUR": "1.0800",
}


async def seed_demo_data(service: Service) -> int:
    """Add the demo members and rates that are missing; return how many rows were added."""
    added = 0
    try:
        async with service.work() as work:
            store = IntakeStore(work.session)
            for member in DEMO_MEMBERS:
                if await store.member(member["member_id"]) is None:
                    await store.insert_member(
                        {
                            **member,
                            "standing_changed_at": None,
                            "created_at": work.now,
                            "updated_at": work.now,
                        }
                    )
                    added += 1
            for currency, rate in DEMO_RATES_TO_USD.items():
                if await store.rate(currency, "USD") is None:
                    await store.save_rate(RateRecord(currency, "USD", rate, work.now, SEED_ACTOR))
                    added += 1
    except IntegrityError:  # another intake process seeded at the same moment
        logger.info("demo data seeded by another process")
        return 0
    if added:
        logger.info("seeded %s demo rows", added)
    return added
