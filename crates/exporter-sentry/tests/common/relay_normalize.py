"""Runs events through Sentry's own normaliser (Relay, PyPI `sentry-relay`).

Reads a JSON array of event payloads from the file named by argv[1]; for each,
calls StoreNormalizer(project_id=1).normalize_event(event). Prints one JSON
line per event: {"ok": true, "event": <normalised>} or
{"ok": false, "error": "<message>"}. Exit 0 when every event normalised
without raising; the caller also checks the normalised events' `errors`.
"""
import json
import sys

from sentry_relay.processing import StoreNormalizer


def main() -> int:
    events = json.load(open(sys.argv[1], encoding="utf-8"))
    normalizer = StoreNormalizer(project_id=1)
    failed = 0
    for event in events:
        try:
            out = normalizer.normalize_event(event)
            print(json.dumps({"ok": True, "event": out}))
        except Exception as e:  # noqa: BLE001 - report every kind of refusal
            failed += 1
            print(json.dumps({"ok": False, "error": str(e).splitlines()[0]}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
