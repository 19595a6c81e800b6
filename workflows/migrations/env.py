from shared.migrations import run_env
from workflows.persistence import metadata

run_env(metadata)
