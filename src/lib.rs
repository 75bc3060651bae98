//! credit-tender: signed, reproducible transport-credit assessments for public
//! tenders, served over gRPC.
//!
//! # Layout
//! - [`domain`]: credit codes, grades, records and their validation; no I/O.
//! - [`policy`]: policy files and the pure `evaluate`.
//! - [`signing`]: Ed25519 keys and DSSE envelopes.
//! - [`store`]: the versioned credit store on SQLite or PostgreSQL.
//! - [`import`]: JSON Lines and CSV files into the store, all or nothing.
//! - [`proto`]: the generated gRPC API (`proto/credit_tender/v1`).
//! - [`service`]: the tonic services; proto ⇄ domain happens only here.
//! - [`cache`]: moka caches of profiles, tenders and statements, following the change feed.
//! - [`web`]: the evaluation committee's page, verified in the browser.
//! - [`server`]: one listener with gRPC, health, reflection, the page and /metrics; shutdown.
//! - [`cli`]: the `credit-tender` command.

#![forbid(unsafe_code)]

pub mod cache;
pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod import;
pub mod metrics;
mod metrics_layer;
pub mod policy;
pub mod proto;
pub mod server;
pub mod signing;
pub mod service;
pub mod store;
pub mod web;
