"""Tables of the review service (migrated by services/review/migrations)."""

from sqlalchemy import MetaData

from shared.messaging.tables import define_messaging_tables

metadata = MetaData()
messaging = define_messaging_tables(metadata, "review")
