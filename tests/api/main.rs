//! Integration tests: every test drives the real interface — the CLI binary or
//! a server on 127.0.0.1 — against SQLite and, when `DATABASE_URL` is set,
//! PostgreSQL. All modules link into this one binary to keep builds short.

mod access;
mod assessment;
mod buf_curl;
mod cache;
mod clients;
mod connect;
mod connect_node;
mod crash;
mod credit_data;
mod environment;
mod golden;
mod grpc_web;
mod hardening;
mod harness;
mod helpers;
mod http_fuzz;
mod import;
mod java_client;
mod layers;
mod log;
mod log_access;
mod long_values;
mod multiprocess;
mod ocds;
mod outage;
mod outside;
mod outside_again;
mod outside_third;
mod overload;
mod ownership;
mod readme;
mod readme_hand_checks;
mod records;
mod refusals;
mod rules;
mod server;
mod signing;
mod store;
mod suite;
mod supervision;
mod supervision_inspectors;
mod tender_access;
mod watch;
mod web;
