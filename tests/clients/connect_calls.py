"""Calls credit-tender through the Connect protocol the way a platform's web
back end does: an HTTP/1.1 POST with Python's standard http.client, nothing
else. Used by tests/api/connect.rs.

usage: connect_calls.py HOST:PORT < CALLS_JSON

CALLS_JSON is a list of calls, each {"path", "headers": {name: value},
"body": text} (or "body_hex" for bytes), "method" when not POST, and
"fresh": true to send it on a new connection (after a refusal that left the
body unread, the server closes the connection it came on). They are sent in order on one
kept-alive connection (a fresh one when the server closed it). Prints one
JSON list, one entry per call: {"status", "version", "headers" (names
lowercased; a repeated header's values joined by ", "), "body_hex"}.
"""
import http.client
import json
import sys


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    calls = json.load(sys.stdin)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    out = []
    for call in calls:
        if call.get("fresh"):
            conn.close()
            conn = http.client.HTTPConnection(host, int(port), timeout=60)
        body = bytes.fromhex(call["body_hex"]) if "body_hex" in call else call.get("body", "").encode("utf-8")
        conn.request(call.get("method", "POST"), call["path"], body=body, headers=call.get("headers", {}))
        res = conn.getresponse()
        data = res.read()
        headers = {}
        for name, value in res.getheaders():
            name = name.lower()
            headers[name] = headers[name] + ", " + value if name in headers else value
        out.append({"status": res.status, "version": res.version, "headers": headers, "body_hex": data.hex()})
        if res.will_close:
            conn.close()
            conn = http.client.HTTPConnection(host, int(port), timeout=60)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
