//! `credit_tender.v1.KeyService`: the public keys, for offline verification.

use super::tenders::timestamp;
use crate::proto::v1 as pb;
use crate::signing::{PublicKeyInfo, SharedKeyring};
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct KeyApi {
    keys: SharedKeyring,
}

impl KeyApi {
    pub fn new(keys: SharedKeyring) -> Self {
        KeyApi { keys }
    }
}

pub fn key_to_proto(k: PublicKeyInfo) -> pb::PublicKey {
    pb::PublicKey {
        keyid: k.keyid,
        public_key: k.public_key.into(),
        algorithm: "ed25519".into(),
        status: k.status.as_str().into(),
        valid_from: k.valid_from.map(timestamp),
        valid_to: k.valid_to.map(timestamp),
        role: k.role.as_str().into(),
    }
}

#[tonic::async_trait]
impl pb::key_service_server::KeyService for KeyApi {
    async fn list_keys(&self, _: Request<pb::ListKeysRequest>) -> Result<Response<pb::ListKeysResponse>, Status> {
        let keys = self.keys.get().public_keys().into_iter().map(key_to_proto).collect();
        Ok(Response::new(pb::ListKeysResponse { keys }))
    }
}
