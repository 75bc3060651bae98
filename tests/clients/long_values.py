"""Sends every string field of every request method, one at a time, with a
value far too long (10,000 ASCII characters, then 3,000 Chinese ones), from
grpcio, a client that knows the API only by the server's reflection. Each
call must fail INVALID_ARGUMENT naming that field: never RESOURCE_EXHAUSTED,
which grpcio reports when an error's trailers pass its metadata limit (an
error that echoes the value, twice, percent-encoded), and which clients
retry. Used by tests/api/long_values.rs.

usage: long_values.py HOST:PORT BASES_JSON

BASES_JSON maps "package.Service/Method" to a list of valid requests in
protobuf's JSON mapping; every string field of every method's request type
must be reachable from one of them (the script fails if one is not).
Prints one line per call and a summary; exits 1 if any call went wrong.
"""
import json
import sys

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import FieldDescriptor
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

VALUES = {"ascii": "A" * 10_000, "chinese": "甲" * 3_000}


def is_repeated(f):
    # protobuf 5.x has `label`; 6 and later, `is_repeated`.
    return f.is_repeated if hasattr(f, "is_repeated") else f.label == FieldDescriptor.LABEL_REPEATED


def string_paths(descriptor, prefix=(), depth=0):
    """Every string field under `descriptor`, as a tuple of field names."""
    out = []
    for f in descriptor.fields:
        path = prefix + (f.name,)
        if f.type == FieldDescriptor.TYPE_STRING:
            out.append(path)
        elif f.type == FieldDescriptor.TYPE_MESSAGE and depth < 4 and not f.message_type.full_name.startswith("google.protobuf."):
            out.extend(string_paths(f.message_type, path, depth + 1))
    return out


def reachable(message, path):
    """Whether `message` holds every message on the way to the field `path`."""
    for name in path[:-1]:
        f = message.DESCRIPTOR.fields_by_name[name]
        if is_repeated(f):
            values = getattr(message, name)
            if not values:
                return False
            message = values[0]
        else:
            if not message.HasField(name):
                return False
            message = getattr(message, name)
    return True


def set_value(message, path, value):
    """Sets the string at `path` (element 0 of repeated fields); returns the
    field name the server should name: repeated fields indexed, and the
    members of a oneof of records left out (`records[0].grade`)."""
    named = []
    for name in path[:-1]:
        f = message.DESCRIPTOR.fields_by_name[name]
        if f.containing_oneof is None:
            named.append(f"{name}[0]" if is_repeated(f) else name)
        message = getattr(message, name)[0] if is_repeated(f) else getattr(message, name)
    last = message.DESCRIPTOR.fields_by_name[path[-1]]
    if is_repeated(last):
        values = getattr(message, path[-1])
        if values:
            values[0] = value
        else:
            values.append(value)
        named.append(f"{path[-1]}[0]")
    else:
        setattr(message, path[-1], value)
        named.append(path[-1])
    return ".".join(named)


def fields(data):
    """A protobuf message's fields: [(number, wire type, value)]."""
    out, i = [], 0

    def varint():
        nonlocal i
        shift = result = 0
        while True:
            b = data[i]
            i += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return result

    while i < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            out.append((number, wire, varint()))
        elif wire == 2:
            n = varint()
            out.append((number, wire, data[i:i + n]))
            i += n
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"wire type {wire}")
    return out


def violations(error):
    """The google.rpc.BadRequest field names in an error's details."""
    names = []
    for key, value in error.trailing_metadata() or ():
        if key != "grpc-status-details-bin":
            continue
        for number, _, any_ in fields(value):
            if number != 3:
                continue
            parts = {n: v for n, _, v in fields(any_)}
            if parts.get(1, b"").endswith(b"google.rpc.BadRequest"):
                for n, _, violation in fields(parts.get(2, b"")):
                    if n == 1:
                        names += [v.decode() for m, _, v in fields(violation) if m == 1]
    return names


def main():
    target, bases_json = sys.argv[1:3]
    bases = json.loads(bases_json)
    channel = grpc.insecure_channel(target)
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    failures, calls = [], 0
    # Every method of the API whose request has a string field needs a base.
    database = ProtoReflectionDescriptorDatabase(channel)
    for service_name in database.get_services():
        if not service_name.startswith("credit_tender."):
            continue
        for m in pool.FindServiceByName(service_name).methods:
            name = f"{service_name}/{m.name}"
            if string_paths(m.input_type) and name not in bases:
                failures.append(f"{name}: no base request, so its string fields are not tried")
    for method, requests in sorted(bases.items()):
        service_name, method_name = method.split("/")
        m = pool.FindServiceByName(service_name).FindMethodByName(method_name)
        request_class = message_factory.GetMessageClass(m.input_type)
        response_class = message_factory.GetMessageClass(m.output_type)
        call = channel.unary_unary(
            f"/{method}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        parsed = [json_format.Parse(json.dumps(r), request_class()) for r in requests]
        for path in string_paths(m.input_type):
            base = next((p for p in parsed if reachable(p, path)), None)
            if base is None:
                failures.append(f"{method} {'.'.join(path)}: no base request reaches this field")
                continue
            for kind, value in VALUES.items():
                request = request_class()
                request.CopyFrom(base)
                expected = set_value(request, path, value)
                calls += 1
                try:
                    call(request, timeout=30)
                    failures.append(f"{method} {expected} ({kind}): accepted")
                    continue
                except grpc.RpcError as e:
                    code, message, named = e.code(), e.details() or "", violations(e)
                ok = code == grpc.StatusCode.INVALID_ARGUMENT and expected in named and expected in message
                line = f"{method} {expected} ({kind}): {code.name} {named} message {len(message.encode())} bytes"
                print(line)
                if not ok:
                    failures.append(f"{line}: {message[:300]}")
    print(f"{calls} calls, {len(failures)} failure(s)")
    for f in failures:
        print(f"FAILED {f}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
