"""Calls one credit-tender method the way grpcurl does: the schema from the
server's reflection service, the request from JSON, the answer printed as
protobuf JSON. Used by tests/api/clients.rs; needs grpcio, grpcio-reflection
and protobuf (pip install grpcio grpcio-reflection protobuf).

usage: reflect_call.py HOST:PORT SERVICE/METHOD REQUEST_JSON

Prints one JSON object: "json", the answer in protobuf's JSON mapping;
"binary", the answer re-serialised from the dynamic message (hex); and
"unknown_fields", fields the reflected schema did not describe.
"""
import json
import sys

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf import unknown_fields as unknown_fields_set
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase


def unknown_fields(msg):
    count = len(unknown_fields_set.UnknownFieldSet(msg))
    for field, value in msg.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            values = value.values()
        elif field.is_repeated:
            values = value
        else:
            values = [value]
        count += sum(unknown_fields(v) for v in values if hasattr(v, "ListFields"))
    return count


def main():
    target, method, request_json = sys.argv[1:4]
    service_name, method_name = method.split("/")
    channel = grpc.insecure_channel(target)
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    service = pool.FindServiceByName(service_name)
    m = service.FindMethodByName(method_name)
    request_class = message_factory.GetMessageClass(m.input_type)
    response_class = message_factory.GetMessageClass(m.output_type)
    request = json_format.Parse(request_json, request_class())
    call = channel.unary_unary(
        f"/{service_name}/{method_name}",
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    response = call(request, timeout=30)
    print(json.dumps({
        "json": json_format.MessageToDict(response, always_print_fields_with_no_presence=True),
        "binary": response.SerializeToString(deterministic=True).hex(),
        "unknown_fields": unknown_fields(response),
    }))


if __name__ == "__main__":
    main()
