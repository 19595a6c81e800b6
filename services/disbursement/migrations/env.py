from services.disbursement.persistence import metadata
from shared.migrations import run_env

run_env(metadata)
