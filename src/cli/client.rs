//! Small gRPC clients: `assess` and `keys`, writing the JSON forms `verify` reads.

use super::exit::Exit;
use super::out::{outln, outp};
use super::remote::{Connect, connect};
use super::render;
use crate::proto::v1 as pb;
use clap::Args;

#[derive(Debug, Args)]
pub struct AssessArgs {
    #[command(flatten)]
    pub connect: Connect,
    #[arg(long)]
    pub tender: String,
    /// The bidder's credit code; a consortium as CODE,CODE,… with the lead first.
    #[arg(long)]
    pub bidder: String,
    /// The contract price in fen, to have the performance bond given in fen too.
    #[arg(long, value_name = "FEN")]
    pub contract_price_fen: Option<i64>,
    /// Print the DSSE envelope as JSON (what `verify` reads), with the
    /// statement's `logIndex` beside its fields, instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub connect: Connect,
}

/// Asks for one bidder's statement and prints it: as text with its log
/// index, or (`--json`) as the envelope with `logIndex` added, which
/// `verify` reads and `proof --index` takes.
pub(super) async fn assess(args: &AssessArgs) -> Result<(), Exit> {
    let server = args.connect.server.as_str();
    let mut client = pb::assessment_service_client::AssessmentServiceClient::new(connect(&args.connect).await?);
    let bidder = pb::Bidder { credit_codes: args.bidder.split(',').map(|s| s.trim().to_owned()).collect() };
    let r = client
        .assess(pb::AssessRequest { tender_id: args.tender.clone(), bidder: Some(bidder), contract_price_fen: args.contract_price_fen })
        .await
        .map_err(|e| Exit::from_status(server, &e))?
        .into_inner();
    if args.json {
        let env = r.envelope.ok_or_else(|| Exit::software("the server sent no envelope"))?;
        let mut json = serde_json::to_value(&env).expect("envelopes serialise");
        if let (Some(index), Some(fields)) = (r.log_index, json.as_object_mut()) {
            // As a string, the JSON mapping's form for a 64-bit integer.
            fields.insert("logIndex".into(), serde_json::Value::String(index.to_string()));
        }
        outln!("{}", serde_json::to_string_pretty(&json).expect("envelopes serialise"));
    } else if let Some(s) = &r.statement {
        outp!("{}", render::assessment(s));
        match r.log_index {
            Some(index) => outln!("Log index   {index} (credit-tender proof --index {index})"),
            None => outln!("Log index   none (the server keeps no transparency log)"),
        }
    }
    Ok(())
}

pub(super) async fn keys(args: &KeysArgs) -> Result<(), Exit> {
    let mut client = pb::key_service_client::KeyServiceClient::new(connect(&args.connect).await?);
    let r = client.list_keys(pb::ListKeysRequest {}).await.map_err(|e| Exit::from_status(&args.connect.server, &e))?.into_inner();
    outln!("{}", serde_json::to_string_pretty(&r).expect("keys serialise"));
    Ok(())
}
