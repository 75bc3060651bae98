//! The CLI's defaults are the library's: `serve` with no flags runs the
//! server as `ServerOptions::default()` and the cache as
//! `CacheConfig::default()` describe it, read through clap's own parser.

use super::{Cli, Command};
use crate::cache::CacheConfig;
use crate::server::{LogOptions, ServerOptions};
use clap::{CommandFactory, FromArgMatches};

/// `cmd` with no argument read from the environment.
fn without_env(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|arg| arg.env(None::<&'static str>)).mut_subcommands(without_env)
}

/// `serve --keys keys.toml` as clap parses it, from the command line only:
/// a CREDIT_TENDER_* variable set where the tests run must not stand in for
/// a default.
fn serve_args() -> Box<super::ServeArgs> {
    let matches =
        without_env(Cli::command()).try_get_matches_from(["credit-tender", "serve", "--keys", "keys.toml"]).expect("serve parses");
    match Cli::from_arg_matches(&matches).expect("serve reads").command {
        Command::Serve(args) => args,
        other => panic!("parsed as {other:?}"),
    }
}

#[test]
fn serve_without_flags_runs_the_server_as_its_defaults_say() {
    let ServerOptions {
        shutdown_grace,
        request_timeout,
        web_test_hooks,
        principals,
        tls,
        max_in_flight,
        queue_target,
        max_signing,
        body_timeout,
        body_budget,
        queue_wait_test_hook,
        max_streams_per_connection,
        max_connections,
        idle_timeout,
        handshake_timeout,
        log,
        background_refresh,
        ready: _,
        risk_policies,
    } = serve_args().listen.options();
    let d = ServerOptions::default();
    assert_eq!(shutdown_grace, d.shutdown_grace);
    assert_eq!(request_timeout, d.request_timeout);
    assert_eq!(web_test_hooks, d.web_test_hooks);
    assert_eq!((principals.is_none(), tls.is_none()), (d.principals.is_none(), d.tls.is_none()));
    assert_eq!(max_in_flight, d.max_in_flight);
    assert_eq!(queue_target, d.queue_target);
    assert_eq!(max_signing, d.max_signing);
    assert_eq!(body_timeout, d.body_timeout);
    assert_eq!(body_budget, d.body_budget);
    assert_eq!(queue_wait_test_hook, d.queue_wait_test_hook);
    assert_eq!(max_streams_per_connection, d.max_streams_per_connection);
    assert_eq!(max_connections, d.max_connections);
    assert_eq!(idle_timeout, d.idle_timeout);
    assert_eq!(handshake_timeout, d.handshake_timeout);
    let (LogOptions { origin, checkpoint_interval }, defaults) = (log.expect("a log"), d.log.expect("a log"));
    assert_eq!((origin, checkpoint_interval), (defaults.origin, defaults.checkpoint_interval));
    assert_eq!(background_refresh, d.background_refresh);
    assert_eq!(risk_policies, d.risk_policies);
}

#[test]
fn serve_without_flags_caches_as_the_cache_defaults_say() {
    let CacheConfig { enabled, profile_bytes, statement_bytes, max_staleness, poll_interval, ttl, change_window, clock: _ } =
        serve_args().cache.config();
    let d = CacheConfig::default();
    assert_eq!(enabled, d.enabled);
    assert_eq!(profile_bytes, d.profile_bytes);
    assert_eq!(statement_bytes, d.statement_bytes);
    assert_eq!(max_staleness, d.max_staleness);
    assert_eq!(poll_interval, d.poll_interval);
    assert_eq!(ttl, d.ttl);
    assert_eq!(change_window, d.change_window);
}
