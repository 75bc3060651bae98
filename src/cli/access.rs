//! `credit-tender token create` and `credit-tender cert`: what an operator
//! needs to give callers an identity.

use super::Exit;
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
    /// Host names the server certificate is for (the first is its common name).
    #[arg(long = "host", required = true, value_name = "NAME")]
    pub hosts: Vec<String>,
    /// Client certificates to issue as well, one per principal subject (CN).
    #[arg(long = "client", value_name = "CN")]
    pub clients: Vec<String>,
    /// Directory to write ca.pem, server.pem, server.key and client-CN.pem/.key into; refused if they exist.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Days the certificates are valid.
    #[arg(long, default_value_t = 90)]
    pub days: u32,
}

pub fn token(cmd: &TokenCommand) -> Result<(), Exit> {
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
pub fn cert(args: &CertArgs) -> Result<(), Exit> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    let failed = |e: rcgen::Error| Exit::usage(format!("cannot make certificates: {e}"));
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
