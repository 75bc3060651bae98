//! `credit-tender token create` and `credit-tender cert`: what an operator
//! needs to give callers an identity.

use super::exit::Exit;
use super::out::{errln, outln};
use crate::access::Role;
use crate::access::principals::new_token;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a fresh 256-bit bearer token once, and the principals-file entry
    /// that holds only its SHA-256.
    Create(TokenArgs),
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The principal's name in the principals file.
    #[arg(long)]
    pub name: String,
    /// provider | platform | supervisor
    #[arg(long)]
    pub role: String,
}

#[derive(Debug, Args)]
pub struct CertArgs {
    /// Host names the server certificate is for (the first is its common
    /// name): DNS names (RFC 1123, `*.` first label allowed) or IP addresses.
    #[arg(long = "host", required = true, value_name = "NAME", value_parser = host_name)]
    pub hosts: Vec<String>,
    /// Client certificates to issue as well, one per principal subject (CN):
    /// letters, digits and `-_.@`, as it is also part of a file name.
    #[arg(long = "client", value_name = "CN", value_parser = client_name)]
    pub clients: Vec<String>,
    /// Directory to write ca.pem, server.pem, server.key and client-CN.pem/.key into; refused if they exist.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Days the certificates are valid: 1 to 3650 (ten years).
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=MAX_CERT_DAYS as i64))]
    pub days: u32,
}

/// The longest validity `cert` issues: ten years. Test certificates that
/// outlive their deployment are a risk, and rcgen's dates end in 9999.
const MAX_CERT_DAYS: u32 = 3650;

/// `--host`: an IP address, or a DNS name of RFC 1123 labels (letters,
/// digits, hyphens inside; 1 to 63 characters each; 253 in all), the first
/// label possibly `*`. Anything else would be a certificate no client matches.
fn host_name(s: &str) -> Result<String, String> {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return Ok(s.to_owned());
    }
    let shown = crate::domain::text::shown(s);
    let name = s.strip_suffix('.').unwrap_or(s);
    if name.is_empty() || name.len() > 253 {
        return Err(format!("'{shown}' is not a host name: a DNS name has 1 to 253 characters"));
    }
    for (i, label) in name.split('.').enumerate() {
        if i == 0 && label == "*" && name.contains('.') {
            continue;
        }
        let ok_chars = label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if label.is_empty() || label.len() > 63 || !ok_chars || label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "'{shown}' is not a DNS name or an IP address: each dot-separated label has 1 to 63 letters, digits or inner hyphens (a Chinese name goes in its xn-- form)"
            ));
        }
    }
    Ok(s.to_owned())
}

/// `--client`: a subject common name that is also safe in a file name.
fn client_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty() && s.len() <= 64 && !s.starts_with('.') && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "'{}' is not a client name: use 1 to 64 letters, digits and -_.@ (not starting with a dot), as it names the files client-CN.pem and client-CN.key",
            crate::domain::text::shown(s)
        ))
    }
}

pub(super) fn token(cmd: &TokenCommand) -> Result<(), Exit> {
    let TokenCommand::Create(args) = cmd;
    let role = Role::parse(&args.role)
        .filter(|r| *r != Role::Committee)
        .ok_or_else(|| Exit::usage(format!("--role: '{}' is not one of provider, platform, supervisor", args.role)))?;
    let (token, digest) = new_token();
    outln!("{token}");
    errln!(
        "Give the token above to '{}' once; it is not stored. Add to the principals file:\n\n\
         [[principal]]\nname = \"{}\"\nrole = \"{role}\"\ntoken_sha256 = \"{digest}\"\n# and its scope: regions, issuers, authorities",
        args.name,
        args.name
    );
    Ok(())
}

fn write_new(path: &Path, contents: &str, secret: bool) -> Result<(), Exit> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let _ = secret;
    let mut f = options.open(path).map_err(|e| Exit::creating(path, &e))?;
    f.write_all(contents.as_bytes()).map_err(|e| Exit::io(format!("{}: cannot write: {}", path.display(), super::exit::io_reason(&e))))
}

/// A self-signed CA and, signed by it, a server certificate for `hosts` and
/// client certificates: enough for a test deployment over TLS.
pub(super) fn cert(args: &CertArgs) -> Result<(), Exit> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    let failed = |e: rcgen::Error| Exit::software(format!("cannot make certificates: {e}"));
    // Nothing is written unless every file can be: none exists yet.
    let mut outputs = vec!["ca.pem".to_owned(), "server.pem".into(), "server.key".into()];
    outputs.extend(args.clients.iter().flat_map(|cn| [format!("client-{cn}.pem"), format!("client-{cn}.key")]));
    if let Some(taken) = outputs.iter().map(|f| args.out.join(f)).find(|p| p.exists()) {
        return Err(Exit::cant_create(format!("{}: cannot create: it already exists; nothing was written", taken.display())));
    }
    std::fs::create_dir_all(&args.out).map_err(|e| Exit::creating(&args.out, &e))?;
    let now = time::OffsetDateTime::now_utc();
    let until = now + time::Duration::days(i64::from(args.days));
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    ca_params.distinguished_name.push(DnType::CommonName, "credit-tender test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    (ca_params.not_before, ca_params.not_after) = (now, until);
    let ca_key = KeyPair::generate().map_err(failed)?;
    let ca = ca_params.self_signed(&ca_key).map_err(failed)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    write_new(&args.out.join("ca.pem"), &ca.pem(), false)?;

    let mut server = CertificateParams::new(args.hosts.clone()).map_err(failed)?;
    server.distinguished_name.push(DnType::CommonName, args.hosts[0].clone());
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    (server.not_before, server.not_after) = (now, until);
    let server_key = KeyPair::generate().map_err(failed)?;
    let server_cert = server.signed_by(&server_key, &issuer).map_err(failed)?;
    write_new(&args.out.join("server.pem"), &server_cert.pem(), false)?;
    write_new(&args.out.join("server.key"), &server_key.serialize_pem(), true)?;

    for cn in &args.clients {
        let mut client = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
        client.distinguished_name.push(DnType::CommonName, cn.clone());
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        (client.not_before, client.not_after) = (now, until);
        let key = KeyPair::generate().map_err(failed)?;
        let cert = client.signed_by(&key, &issuer).map_err(failed)?;
        write_new(&args.out.join(format!("client-{cn}.pem")), &cert.pem(), false)?;
        write_new(&args.out.join(format!("client-{cn}.key")), &key.serialize_pem(), true)?;
        errln!("client certificate for principal subject \"CN={cn}\"");
    }
    errln!("wrote {}: ca.pem (trust it on clients), server.pem, server.key", args.out.display());
    Ok(())
}
