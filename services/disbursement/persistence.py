"""Tables of the disbursement service (migrated by services/disbursement/migrations)."""

from sqlalchemy import MetaData

from shared.messaging.tables import define_messaging_tables

metadata = MetaData()
messaging = define_messaging_tables(metadata, "disbursement")
