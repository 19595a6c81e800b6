"""Demo reviewers, seeded when the service runs in development mode (``grantflow up``).

``demo-reviewer-1`` is the reviewer whose token ``grantflow up`` prints; it knows every
program, focus area and region, so it is the first choice for any demo application that
does not come from its own city.
"""

from __future__ import annotations

from typing import Any, Final

ALL_PROGRAMS: Final = ("AUPAP", "YAP-TNA", "LEADING-ASIA", "SINO-AFRICAN", "CITIZEN")
ALL_FOCUS_AREAS: Final = ("business_and_trade", "youth_and_education", "community_development")
AFRICA: Final = ("KE", "GH", "NG", "ZA", "TZ", "ET", "UG", "RW", "SN", "EG", "MA")
ASIA: Final = ("CN", "JP", "KR", "VN", "IN", "ID", "PH", "TH", "MY", "SG", "TW")
NORTH_AMERICA: Final = ("CA", "MX")


def _reviewer(
    number: int,
    name: str,
    home_city: str,
    *,
    programs: tuple[str, ...],
    focus_areas: tuple[str, ...],
    regions: tuple[str, ...],
    languages: tuple[str, ...],
    capacity: int,
) -> dict[str, Any]:
    reviewer_id = f"demo-reviewer-{number}"
    return {
        "id": reviewer_id,
        "name": name,
        "email": f"{reviewer_id}@reviewers.grantflow.example",
        "home_city": home_city,
        "home_country": "US",
        "programs": list(programs),
        "focus_areas": list(focus_areas),
        "regions": list(regions),
        "languages": list(languages),
        "capacity": capacity,
        "active": True,
        "conflict_members": [],
        "conflict_cities": [],
    }


DEMO_REVIEWERS: Final[tuple[dict[str, Any], ...]] = (
    _reviewer(
        1,
        "Amara Okafor",
        "Duluth",
        programs=ALL_PROGRAMS,
        focus_areas=ALL_FOCUS_AREAS,
        regions=AFRICA + ASIA + NORTH_AMERICA,
        languages=("en", "fr"),
        capacity=50,
    ),
    _reviewer(
        2,
        "Wei Chen",
        "San Jose",
        programs=("LEADING-ASIA", "SINO-AFRICAN", "CITIZEN"),
        focus_areas=("business_and_trade", "community_development"),
        regions=("CN", "JP", "KR", "VN", "PH"),
        languages=("en", "zh"),
        capacity=10,
    ),
    _reviewer(
        3,
        "Lucía Hernández",
        "San Antonio",
        programs=("YAP-TNA", "CITIZEN"),
        focus_areas=("youth_and_education",),
        regions=NORTH_AMERICA,
        languages=("en", "es"),
        capacity=10,
    ),
    _reviewer(
        4,
        "Kwame Mensah",
        "Atlanta",
        programs=("AUPAP", "SINO-AFRICAN"),
        focus_areas=("community_development", "business_and_trade"),
        regions=("GH", "KE", "NG", "TZ", "ZA", "ET"),
        languages=("en", "fr"),
        capacity=10,
    ),
    _reviewer(
        5,
        "Priya Raman",
        "Minneapolis",
        programs=("LEADING-ASIA", "CITIZEN"),
        focus_areas=("youth_and_education", "community_development"),
        regions=("IN", "ID", "TH", "MY"),
        languages=("en", "hi"),
        capacity=8,
    ),
    _reviewer(
        6,
        "Jean-Luc Tremblay",
        "Burlington",
        programs=("YAP-TNA", "CITIZEN"),
        focus_areas=("youth_and_education", "business_and_trade"),
        regions=("CA",),
        languages=("en", "fr"),
        capacity=8,
    ),
    _reviewer(
        7,
        "Grace Njeri",
        "Denver",
        programs=("AUPAP", "CITIZEN"),
        focus_areas=("community_development",),
        regions=("KE", "UG", "RW"),
        languages=("en", "sw"),
        capacity=6,
    ),
    _reviewer(
        8,
        "Hiroshi Tanaka",
        "Portland",
        programs=("LEADING-ASIA",),
        focus_areas=("business_and_trade",),
        regions=("JP", "KR", "TW"),
        languages=("en", "ja"),
        capacity=6,
    ),
)
