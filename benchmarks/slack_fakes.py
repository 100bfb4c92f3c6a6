"""The Slack benchmark's outside world in its own process: the fake Slack Web API and a slow scripted model.

Kept out of the load generator's process so their work does not steal its CPU (and inflate measured latency).
Prints one JSON line ``{"slack_api_url": ..., "model_url": ...}`` once both listen, then serves until stdin
closes, and prints the calls they saw as a last JSON line. Run by benchmarks/slack_ack.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tests.support.fake_slack import FakeSlack
from tests.support.model_server import ScriptedModelServer, slow, tool_call


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-seconds", type=float, default=2.0, help="how long every model call takes")
    args = parser.parse_args(argv)

    def responder(_: dict[str, Any]) -> Any:
        return slow(args.model_seconds, tool_call("done_for_now", message="Noted; nothing to deploy right now."))

    with FakeSlack() as slack, ScriptedModelServer(responder=responder) as model:
        print(json.dumps({"slack_api_url": slack.api_url, "model_url": model.base_url}), flush=True)
        sys.stdin.read()  # until the benchmark closes our stdin
        print(json.dumps({"model_requests": len(model.requests), "slack_calls": len(slack.calls)}), flush=True)


if __name__ == "__main__":
    main()
