"""The workflows process's tables: its outbox and the other messaging tables.

The workflow's only side effect is publishing; the publishing activity writes into this
outbox, and the relay publishes, so the workflow's events get the same protection as
every service's (a broker that forgets them gets them again).
"""

from __future__ import annotations

from sqlalchemy import MetaData

from shared.messaging.tables import define_messaging_tables

metadata = MetaData()
messaging = define_messaging_tables(metadata, "workflows")
