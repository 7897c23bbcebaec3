#!/usr/bin/env python3
"""A complete Powerstrip adapter: labels every container created through the proxy.

Run it with `label.py PORT`, then hook it in adapters.yml:

    endpoints:
      "POST /*/containers/create": { pre: [label] }
    adapters:
      label: http://127.0.0.1:PORT/hook

Standard library only; any language that can serve HTTP and parse JSON works the same way.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        hook = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if hook["Type"] == "pre-hook":
            request = hook["ClientRequest"]
            if request["Body"]:  # a JSON string, or null
                body = json.loads(request["Body"])
                body["Labels"] = body.get("Labels") or {}
                body["Labels"]["powerstrip.example/labelled-by"] = "label.py"
                request["Body"] = json.dumps(body)
            reply = {"PowerstripProtocolVersion": 1, "ModifiedClientRequest": request}
        else:  # post-hook: pass Docker's response on unchanged
            reply = {"PowerstripProtocolVersion": 1, "ModifiedServerResponse": hook["ServerResponse"]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1])), Hook).serve_forever()
