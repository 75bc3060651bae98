// A Node client as a platform team would write it: @connectrpc/connect-node
// with the protobuf-es code generator's output for proto/ (made by the test
// with `buf generate`, not kept), calling Assess over TLS with a bearer token,
// in the Connect protocol (HTTP/2) and in gRPC-Web (HTTP/1.1), and one call
// that is refused. Used by tests/api/connect_node.rs.
//
// usage: node connect_node.mjs GENERATED_DIR BASE_URL SERVER_NAME CA_PEM TOKEN TENDER CREDIT_CODE
//
// Prints one JSON object: "connect" and "grpcWeb", each answer in protobuf's
// JSON mapping (protobuf-es's toJson), and "refused", the error of an Assess
// of a tender that does not exist ({code, message}, the code as Connect names it).
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { join } from "node:path";
import { toJson } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";

const [generated, baseUrl, servername, caPath, token, tender, code] = process.argv.slice(2);
const pb = await import(pathToFileURL(join(generated, "credit_tender/v1/assessment_pb.js")).href);

const bearer = (next) => async (req) => {
  req.header.set("authorization", `Bearer ${token}`);
  return next(req);
};
const nodeOptions = { ca: readFileSync(caPath), servername };
const connect = createConnectTransport({ baseUrl, httpVersion: "2", nodeOptions, interceptors: [bearer] });
const grpcWeb = createGrpcWebTransport({ baseUrl, httpVersion: "1.1", nodeOptions, interceptors: [bearer] });

const request = { tenderId: tender, bidder: { creditCodes: [code] } };
const out = {};
for (const [name, transport] of [["connect", connect], ["grpcWeb", grpcWeb]]) {
  const client = createClient(pb.AssessmentService, transport);
  out[name] = toJson(pb.AssessResponseSchema, await client.assess(request));
}
try {
  await createClient(pb.AssessmentService, connect).assess({ ...request, tenderId: "NO-SUCH-TENDER" });
  out.refused = null;
} catch (e) {
  const err = ConnectError.from(e);
  out.refused = { code: Code[err.code], message: err.rawMessage };
}
process.stdout.write(JSON.stringify(out));
