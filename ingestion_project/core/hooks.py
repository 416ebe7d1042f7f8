"""dead_letter_hook: when an ingestion step fails, the dead-letter records of its failed documents are written.

The step has already recorded each failed document FAILED in the ledger together with its dead-letter row (one
transaction), with everything the record needs; the hook writes the JSON objects. Whatever the hook cannot write
(the store refused, the run died first) stays pending in the ledger and the discovery sensor writes it later.
"""

import dagster as dg

from ingestion_project.core.dead_letters import write_pending


@dg.failure_hook(required_resource_keys={"ingestion", "ledger"})
def dead_letter_hook(context: dg.HookContext) -> None:
    """Write the dead-letter records of the documents that failed in this run."""
    book = context.resources.ledger.ledger()
    written, problems = write_pending(book, context.resources.ingestion.dead_letter_store, run_id=context.run_id)
    for uri in written:
        context.log.warning(f"Dead-lettered at {uri}")
    for problem in problems:
        context.log.error(f"Dead-letter record not written yet (the discovery sensor retries it): {problem}")
