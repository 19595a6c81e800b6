"""Tables of the reporting service (migrated by services/reporting/migrations)."""

from sqlalchemy import MetaData

from shared.messaging.tables import define_messaging_tables

metadata = MetaData()
messaging = define_messaging_tables(metadata, "reporting")
