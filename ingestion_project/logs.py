"""JSON logs: a logging formatter for Dagster's run logs, one JSON object per line, for a log shipper.

Turned on per instance in dagster.yaml (see README, "Logs as JSON"):

    python_logs:
      dagster_handler_config:
        handlers:
          json: {class: logging.StreamHandler, formatter: json, stream: ext://sys.stdout}
        formatters:
          json: {(): ingestion_project.logs.JsonFormatter}

Every run of every job on that instance then writes its log lines, and its events, as JSON.
"""

import json
import logging
from datetime import UTC, datetime

_DAGSTER_FIELDS = ("run_id", "job_name", "step_key", "op_name", "resource_name")


class JsonFormatter(logging.Formatter):
    """A record as ``{"ts", "level", "logger", "message", "run_id", "job_name", "step_key", "event", ...}``."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
        }
        meta = getattr(record, "dagster_meta", None) or {}
        entry["message"] = meta.get("orig_message") or record.getMessage()
        entry.update({name: meta[name] for name in _DAGSTER_FIELDS if meta.get(name)})
        event = meta.get("dagster_event")
        if event is not None:
            entry["event"] = event.event_type.name if hasattr(event, "event_type") else str(event)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
