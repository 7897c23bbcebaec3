"""A real OTLP/gRPC trace receiver for tests: opentelemetry-proto's generated
TraceService on grpcio, writing each received span as one JSON line.

    receiver.py PORT_FILE SPANS_FILE

Binds 127.0.0.1 on a free port, writes the port to PORT_FILE once it serves, and appends
{"trace_id", "span_id", "parent_span_id", "name", "service", "start_ns", "end_ns",
"attributes"} per span to SPANS_FILE (ids as lowercase hex, "" for no parent).
"""

import json
import os
import sys
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


def value(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind in ("string_value", "bool_value", "int_value", "double_value") else str(any_value)


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, out):
        self.out = out

    def Export(self, request, context):
        lines = []
        for rs in request.resource_spans:
            service = ""
            for kv in rs.resource.attributes:
                if kv.key == "service.name":
                    service = kv.value.string_value
            for ss in rs.scope_spans:
                for span in ss.spans:
                    lines.append(json.dumps({
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "name": span.name,
                        "service": service,
                        "start_ns": span.start_time_unix_nano,
                        "end_ns": span.end_time_unix_nano,
                        "attributes": {kv.key: value(kv.value) for kv in span.attributes},
                    }))
        if lines:
            self.out.write("\n".join(lines) + "\n")
            self.out.flush()
        return trace_service_pb2.ExportTraceServiceResponse()


def main():
    port_file, spans_file = sys.argv[1], sys.argv[2]
    out = open(spans_file, "a", encoding="utf-8")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Receiver(out), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    tmp = port_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(str(port))
    os.rename(tmp, port_file)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
