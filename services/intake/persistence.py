"""Tables of the intake service (migrated by services/intake/migrations)."""

from sqlalchemy import MetaData

from shared.messaging.tables import define_messaging_tables

metadata = MetaData()
messaging = define_messaging_tables(metadata, "intake")
