"""The program catalog: a versioned data file that program officers edit, not code.

A catalog file holds ``catalog_version``, ``defaults`` shared by every program, and the
``programs`` (each overriding what it needs). Every program becomes a ``ProgramRules``,
the snapshot format that travels with each submitted application, so a file that does not
fit the contract fails at startup rather than at the first submission.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shared.contracts.programs import ProgramRules

CATALOG_DIR = Path(__file__).resolve().parent / "catalog"
NAMED_CATALOGS = {
    "default": CATALOG_DIR / "programs-2027.json",
    "demo": CATALOG_DIR / "programs-demo.json",
}


class CatalogError(ValueError):
    """The catalog file cannot be used; the message says which program and field."""


@dataclass(frozen=True)
class Catalog:
    version: str
    description: str
    exchange_lead_days: int
    programs: dict[str, ProgramRules]
    source: Path

    def get(self, code: str | None) -> ProgramRules | None:
        return self.programs.get(code) if code else None

    def open_programs(self, today: date) -> list[ProgramRules]:
        return [
            rules
            for rules in self.programs.values()
            if rules.application_opens <= today <= rules.application_closes
        ]


def catalog_path(name: str) -> Path:
    """A named catalog (``default``, ``demo``) or the path of a catalog file."""
    return NAMED_CATALOGS.get(name, Path(name))


def load_catalog(name: str = "default") -> Catalog:
    path = catalog_path(name)
    try:
        document: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CatalogError(f"cannot read the program catalog {path}: {error}") from error
    try:
        version = str(document["catalog_version"])
        defaults = dict(document.get("defaults", {}))
        entries = list(document["programs"])
    except (KeyError, TypeError) as error:
        raise CatalogError(f"{path}: needs catalog_version and programs ({error})") from error
    programs: dict[str, ProgramRules] = {}
    for entry in entries:
        values = {**defaults, **entry, "catalog_version": version}
        code = values.get("code", "?")
        try:
            rules = ProgramRules.model_validate(values)
        except ValidationError as error:
            raise CatalogError(f"{path}: program {code}: {error}") from error
        if rules.max_award.currency != rules.currency:
            raise CatalogError(f"{path}: program {code}: max_award is not in {rules.currency}")
        if code in programs:
            raise CatalogError(f"{path}: program {code} appears twice")
        programs[rules.code] = rules
    return Catalog(
        version=version,
        description=str(document.get("description", "")),
        exchange_lead_days=int(document.get("exchange_lead_days", 1)),
        programs=programs,
        source=path,
    )
