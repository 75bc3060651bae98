//! credit-tender: signed, reproducible transport-credit assessments for public
//! tenders, served over gRPC.
//!
//! # Layout
//! Each module imports only the ones above it in this list (its own tests
//! aside); `domain`, `policy` and `tlog` have no I/O, no async and no
//! generated code. `cargo test --test api layers` checks the order.
//! - [`domain`]: credit codes, grades, records, tenders and bidders, and their
//!   validation (one [`domain::FieldError`] for every bad field); no I/O.
//! - [`clock`]: what time it is, as the replica reads it: the wall clock,
//!   or in tests a manual clock moved forward instead of sleeping.
//! - [`rules`]: the rule files read at start-up (credit-code allow-list,
//!   score bands, publication periods), shipped in `policies/` and compiled
//!   in as defaults.
//! - [`policy`]: policy files and the pure `evaluate`, a pipeline of named
//!   steps (grade choice, grounds, exclusion, qualification, points, deposit).
//! - [`tlog`]: the transparency log's mathematics: the RFC 9162 Merkle tree
//!   and C2SP signed notes, pure.
//! - [`signing`]: Ed25519 keys and DSSE envelopes.
//! - [`proto`]: the generated gRPC API (`proto/credit_tender/v1`).
//! - [`metrics`]: Prometheus metrics, served as text on `/metrics`.
//! - [`store`]: the versioned credit store. [`store::CreditStore`] is the sum
//!   of one narrow trait per table family (records, tenders, policies,
//!   grants, the log's tables, upkeep); one generic SQL implementation, a
//!   file per family over the dialect at the bottom, serves SQLite and
//!   PostgreSQL, with only the dialect differences (write lock,
//!   NOTIFY/LISTEN, one query plan) per backend.
//! - [`cache`]: moka caches of profiles, tenders, the tender list and signed
//!   statements, following the store's change feed.
//! - [`import`]: JSON Lines and CSV files into the store, all or nothing.
//! - [`log`]: the transparency log's sequencer (group commit into the store)
//!   and checkpoint publisher.
//! - [`access`]: who may call and what they may do: the pure
//!   `decide(caller, action, resource)` with the role table, and the
//!   principals file (tokens by SHA-256, certificate subjects, limits).
//! - [`tls`]: rustls on the one port, certificates reloaded on SIGHUP.
//! - [`service`]: the tonic services. Each request is parsed into a domain
//!   command (`service/commands.rs`) before its handler acts, and every error
//!   reaches the wire through `ApiError`'s one mapping.
//! - [`supervision`]: the supervision platform's service: credit-risk
//!   classes, inspection draws seeded by the log, outcomes summed from it.
//! - [`refresh`]: the background signing of statements a new bid or a
//!   changed bidder will be asked for.
//! - [`refusal`]: HTTP refusals as a person reads them: a Chinese sentence
//!   first, then a machine code (in the body and a header), for the shed,
//!   the gate and the pages alike.
//! - [`received`]: when a request's bytes reached the host: the kernel's
//!   receive time of each socket read (`SO_TIMESTAMPNS`), for admission.
//! - [`gate`]: two tower layers around admission: one identifies the
//!   caller from the headers (token, client certificate, committee
//!   session) before any body is read, the other applies its limits.
//! - [`shed`]: admission control between them: while a queue stands, a
//!   request that waited past the target for its turn (from when its bytes
//!   reached the host) is refused, and so is one past the in-flight
//!   ceiling or whose body would pass the bodies' budget.
//! - `metrics_layer`: counts gRPC requests by method and code, with latency.
//! - `wire_errors`: the client's undecodable or oversized requests named as
//!   INVALID_ARGUMENT and RESOURCE_EXHAUSTED.
//! - `grpc_web`: gRPC-Web (binary and text) by tonic-web, on the same
//!   port and behind the same layers, every answer ending in a trailer frame.
//! - `connect`: the Connect protocol (unary and server streaming, JSON and
//!   binary) for every RPC, turned into gRPC calls through the same layers.
//! - `listen`: the accept loop under both transports, with its connection cap.
//! - [`web`]: the evaluation committee's page, verified in the browser; its
//!   errors map to HTTP in one place.
//! - [`demo`]: the shipped demo data, loaded through the importer.
//! - `background`: the server's background tasks as one set, drained with a
//!   bounded grace at shutdown.
//! - [`server`]: one listener with gRPC, health, reflection, the page and /metrics; shutdown.
//! - [`cli`]: the `credit-tender` command.
//! - `fuzz_tests` (tests only): fuzzing of every decoder and verifier.

#![forbid(unsafe_code)]

// The library surface, documented item by item (`missing_docs` in
// Cargo.toml's [lints]): the pure core (domain, rules, policy, tlog), the
// keys, the generated API, the store and its cache, access, TLS, metrics,
// supervision, the demo data, import and the log. The server's own parts
// (the CLI, the services, the edge's layers, the pages) are `pub` only so
// the binary and the integration tests can reach them: `#[doc(hidden)]`,
// documented where they are written, not as an API.

pub mod access;
mod background;
pub mod cache;
#[doc(hidden)]
pub mod cli;
pub mod clock;
mod connect;
pub mod demo;
pub mod domain;
#[cfg(test)]
mod fuzz_tests;
#[doc(hidden)]
pub mod gate;
mod grpc_web;
pub mod import;
mod listen;
pub mod log;
pub mod metrics;
mod metrics_layer;
pub mod policy;
pub mod proto;
pub mod received;
#[doc(hidden)]
pub mod refresh;
#[doc(hidden)]
pub mod refusal;
pub mod rules;
#[doc(hidden)]
pub mod server;
#[doc(hidden)]
pub mod service;
#[doc(hidden)]
pub mod shed;
pub mod signing;
pub mod store;
pub mod supervision;
pub mod tlog;
pub mod tls;
#[doc(hidden)]
pub mod web;
mod wire_errors;
