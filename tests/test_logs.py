"""Logs as JSON: the dagster.yaml snippet of the README makes every run log one JSON object per line."""

import json

import dagster as dg

JSON_LOGS = {
    "python_logs": {
        "dagster_handler_config": {
            "handlers": {"json": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
            "formatters": {"json": {"()": "ingestion_project.logs.JsonFormatter"}},
        }
    }
}


def test_runs_log_json_lines_with_their_run_and_step(tmp_path, capfd):
    @dg.op
    def say(context):
        context.log.info("hello as JSON")

    @dg.job
    def speak():
        say()

    overrides = {"telemetry": {"enabled": False}, **JSON_LOGS}
    with dg.DagsterInstance.local_temp(str(tmp_path), overrides=overrides) as instance:
        result = speak.execute_in_process(instance=instance)
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    [said] = [line for line in lines if line["message"] == "hello as JSON"]
    assert said["run_id"] == result.run_id and said["step_key"] == "say" and said["level"] == "INFO"
    assert any(line.get("event") == "RUN_SUCCESS" for line in lines)
