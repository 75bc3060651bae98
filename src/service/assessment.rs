//! `credit_tender.v1.AssessmentService`: signed assessments as of the bid deadline.

use super::answer::{Cache, CachedAnswer};
use super::authorize::{authorize, caller};
use super::commands::{Assess, CheckDeposit, TablePage, tender_id};
use super::error::{ApiError, no_tender};
use super::identity::{Stamp, StatementInputs};
use super::policies::PolicySet;
use super::statement::{ASSESSMENT_PAYLOAD_TYPE, DEPOSIT_CHECK_PAYLOAD_TYPE, sign, statement};
use super::table::{Encoded, Tables};
use super::tenders::bid_to_proto;
use crate::access::{Action, Caller, Resource};
use crate::cache::CachedTender;
use crate::domain::tender::DepositForm;
use crate::domain::{Bidder, CreditCode, Fen, Tender, TenderId};
use crate::log::Log;
use crate::policy::{MemberInput, Policy, evaluate};
use crate::proto::v1 as pb;
use crate::rules::Rules;
use crate::signing::SharedKeyring;
use crate::store::StoreError;
use std::sync::Arc;
use tonic::{Request, Response, Status};

mod watch;

use watch::{Start, Statements, WatchStream, Watches};

/// A committee table's stamp, checked against each row's inputs as the row
/// is made ([`Stamp::covers`]); any row it does not cover marks the table
/// not to be kept.
struct TableCheck<'a> {
    stamp: &'a Stamp,
    uncovered: std::sync::atomic::AtomicBool,
}

/// What a call adds to the making of one assessment, besides the statement.
#[derive(Clone, Copy)]
enum With<'a> {
    Nothing,
    /// A committee table's row: checked against the table's stamp.
    Table(&'a TableCheck<'a>),
    /// A deposit check of a new statement: made and signed with it, and both
    /// leaves handed to the log together, so that the two statements wait
    /// for one group commit (one fsync), not two in turn.
    Deposit(&'a DepositOffer<'a>),
}

/// An offer to check against the assessment being made, and the signed
/// check once made with it ([`With::Deposit`]).
struct DepositOffer<'a> {
    offered: Fen,
    form: DepositForm,
    policy_id: &'a str,
    made: std::sync::Mutex<Option<pb::CheckDepositResponse>>,
}

/// Rows of one AssessTender page computed at once at most.
const TABLE_CONCURRENCY: usize = 8;

#[derive(Clone)]
pub struct AssessmentApi {
    rules: Arc<Rules>,
    policies: Arc<PolicySet>,
    keys: SharedKeyring,
    cache: Arc<Cache>,
    /// Where every signed statement is recorded before it is given out.
    log: Option<Arc<Log>>,
    /// The committee's tables as they go on the wire.
    tables: Arc<Tables>,
    /// Places for new statements (`--max-signing`); `None`: unbounded (the
    /// background refresh, which waits for nobody).
    signing: Option<(Arc<tokio::sync::Semaphore>, usize)>,
    /// Open WatchTender streams, by principal.
    watches: Arc<Watches>,
}

/// What a call that needs a new statement does when every place for one is
/// taken.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// Refused at once (RESOURCE_EXHAUSTED), before anything is signed: a
    /// single Assess or CheckDeposit.
    Refuse,
    /// Waits for a place: a committee table, whose rows are all or nothing
    /// (a table refused half-way would have signed and logged some rows).
    Wait,
    /// The caller holds the places already (a deposit check takes those of
    /// both its statements before either is made).
    Held,
}

impl AssessmentApi {
    pub fn new(rules: Arc<Rules>, policies: Arc<PolicySet>, keys: SharedKeyring, cache: Arc<Cache>, log: Option<Arc<Log>>) -> Self {
        // A quarter of the statements' budget: a row keeps its answer's
        // encoded bytes (shared with the statement cache while it has them)
        // and a frame of a few hundred bytes.
        let tables = Arc::new(Tables::new(cache.config().statement_bytes / 4, cache.config().ttl, cache.metrics().clone()));
        AssessmentApi { rules, policies, keys, cache, log, tables, signing: None, watches: Default::default() }
    }

    /// At most `limit` new statements made at once for callers: a single
    /// call that needs one more is refused, a table waits (`--max-signing`).
    pub fn with_signing_limit(mut self, limit: usize) -> Self {
        self.signing = Some((Arc::new(tokio::sync::Semaphore::new(limit.max(1))), limit.max(1)));
        self
    }

    /// `n` places to make new statements in (at most the limit), as `turn`
    /// says; `None` when unbounded or already held.
    async fn signing_places(&self, turn: Turn, n: u32) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, ApiError> {
        let Some((places, limit)) = &self.signing else { return Ok(None) };
        let n = n.min(u32::try_from(*limit).unwrap_or(u32::MAX));
        match turn {
            Turn::Held => Ok(None),
            Turn::Wait => Ok(places.clone().acquire_many_owned(n).await.ok()),
            Turn::Refuse => places.clone().try_acquire_many_owned(n).map(Some).map_err(|_| {
                self.cache.metrics().denied("signing");
                ApiError::Store(StoreError::Queued(format!("{limit} new statements are being signed and logged already")))
            }),
        }
    }

    /// The display name (Chinese title) of the policy version `digest`, for
    /// pages; `None` when the version cannot be loaded.
    pub async fn policy_title(&self, digest: &str) -> Option<String> {
        self.policies.by_digest(digest).await.ok().map(|p| p.title.clone())
    }

    /// Records a signed envelope in the log; its index once durable.
    async fn record(&self, envelope: &pb::Envelope) -> Result<Option<u64>, ApiError> {
        match &self.log {
            Some(log) => Ok(Some(log.append(crate::log::leaf(envelope)).await?)),
            None => Ok(None),
        }
    }

    fn sign<T: serde::Serialize>(&self, payload_type: &str, message: &T) -> pb::Envelope {
        self.sign_with(&self.keys.get(), payload_type, message)
    }

    fn sign_with<T: serde::Serialize>(&self, keys: &crate::signing::Keyring, payload_type: &str, message: &T) -> pb::Envelope {
        self.cache.metrics().signed();
        sign(keys, payload_type, message)
    }

    /// The tender and its policy, once `caller` may do `action` on it.
    async fn tender(&self, caller: &Caller, action: Action, id: &TenderId) -> Result<(Arc<CachedTender>, Arc<Policy>), ApiError> {
        // The role first, then the tender: no refusal depends on whether it exists.
        authorize(caller, action, Resource::AnyTender, self.cache.metrics(), self.cache.clock())?;
        let cached = self.cache.tender(id).await?.ok_or_else(|| no_tender(id.as_str()))?;
        let resource = Resource::Tender { id, region: cached.tender.terms.region };
        authorize(caller, action, resource, self.cache.metrics(), self.cache.clock())?;
        let policy = self.policies.by_digest(&cached.tender.policy_digest).await?;
        Ok((cached, policy))
    }

    /// Reads every member's profile at one data version, evaluates and signs;
    /// the same question at unchanged inputs returns the same signed statement.
    async fn assess(
        &self,
        tender: &Tender,
        policy: &Policy,
        bidder: &Bidder,
        contract_price: Option<Fen>,
        turn: Turn,
        with: With<'_>,
    ) -> Result<Arc<CachedAnswer>, ApiError> {
        let version = self.cache.data_version().await?;
        if bidder.codes().len() > 1 {
            let codes: Vec<&CreditCode> = bidder.codes().iter().collect();
            self.cache.prefetch(&codes, version).await?;
        }
        let mut profiles = Vec::with_capacity(bidder.codes().len());
        for code in bidder.codes() {
            profiles.push(self.cache.profile(code, version).await?);
        }
        let unconfirmed = self.cache.unconfirmed_for();
        let keys = self.keys.get();
        let data_version = profiles.iter().map(|p| p.read_at).max().unwrap_or(version).max(version);
        let read: Vec<&crate::domain::profile::Profile> = profiles.iter().map(|p| &p.profile).collect();
        // The statement is made from these inputs alone, and cached by their identity.
        let inputs = StatementInputs { tender, policy, bidder, profiles: &read, key_id: keys.active_key_id(), contract_price };
        let key = inputs.identity();
        if let With::Table(check) = with
            && !check.stamp.covers(&inputs)
        {
            check.uncovered.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let make = async {
            // Only a statement to be made takes a place, before anything is signed.
            let _place = self.signing_places(turn, 1).await?;
            let StatementInputs { tender, policy, bidder, profiles, key_id: _, contract_price } = inputs;
            let members: Vec<MemberInput<'_>> =
                bidder.codes().iter().zip(profiles).map(|(code, profile)| MemberInput { code, profile }).collect();
            let assessment = evaluate(tender, policy, &members, contract_price);
            let mut statement = statement(tender, policy, bidder, &assessment, data_version, self.cache.clock().now());
            if let Some(age) = unconfirmed {
                statement.served_from_cache_while_store_unreachable = true;
                let seconds = age.as_secs();
                statement.warnings.push(format!(
                    "served from cached data at data version {data_version}: the credit store has not been reachable for {seconds}s"
                ));
                statement.warning_details.push(pb::Warning {
                    code: "SERVED_FROM_CACHE".into(),
                    params: vec![
                        pb::Param { name: "data_version".into(), value: data_version.to_string() },
                        pb::Param { name: "seconds".into(), value: seconds.to_string() },
                    ],
                    message_zh: format!("信用数据库已{seconds}秒无法访问，本结论依据数据版本{data_version}的缓存数据出具"),
                    ..Default::default()
                });
            }
            let envelope = self.sign_with(&keys, ASSESSMENT_PAYLOAD_TYPE, &statement);
            let log_index = match with {
                With::Deposit(offer) => {
                    let check = deposit_check(statement.clone(), offer.offered, offer.form, offer.policy_id);
                    let checked = self.sign_with(&keys, DEPOSIT_CHECK_PAYLOAD_TYPE, &check);
                    // Both handed in before either is awaited: one batch, the assessment's leaf first.
                    let (log_index, check_index) = tokio::join!(self.record(&envelope), self.record(&checked));
                    let (log_index, check_index) = (log_index?, check_index?);
                    *offer.made.lock().expect("not poisoned") =
                        Some(pb::CheckDepositResponse { envelope: Some(checked), check: Some(check), log_index: check_index });
                    log_index
                }
                _ => self.record(&envelope).await?,
            };
            Ok::<_, ApiError>(CachedAnswer::new(pb::AssessResponse { envelope: Some(envelope), statement: Some(statement), log_index }))
        };
        if unconfirmed.is_some() && self.log.is_none() {
            // Without the log: say so in a fresh statement rather than replay
            // one signed when the store was reachable. With the log, nothing
            // new can be recorded while the store is unreachable, so only a
            // statement already signed and logged (a cache hit) is served,
            // within the staleness bound, and anything new is UNAVAILABLE.
            return make.await.map(Arc::new);
        }
        self.cache.statement(key, make).await
    }

    /// Opens a WatchTender stream (see `watch`): refusals come back here,
    /// before the stream starts.
    pub(crate) async fn watch_tender(&self, caller: &Caller, req: &pb::WatchTenderRequest) -> Result<WatchStream, ApiError> {
        let id = tender_id(&req.tender_id)?;
        let (cached, _) = self.tender(caller, Action::WatchTender, &id).await?;
        let start = Start { api: self.clone(), cache: &self.cache, log: self.log.clone(), watches: &self.watches };
        watch::open(start, caller, &cached, req.after).await
    }

    /// Makes sure the statement of every bid of an open tender is signed and
    /// cached (only the bids with a member in `codes`, when given), as the
    /// committee's table would: profiles in one read, up to TABLE_CONCURRENCY
    /// statements at once, so that their leaves reach the log in one commit
    /// rather than one fsync each. A closed tender's answers are fixed as of
    /// its deadline: nothing is signed for it here. Returns how many
    /// statements were looked at.
    pub async fn refresh_tender(
        &self,
        id: &TenderId,
        codes: Option<&std::collections::HashSet<crate::domain::CreditCode>>,
    ) -> Result<u32, ApiError> {
        let Some(cached) = self.cache.tender(id).await? else { return Ok(0) };
        if cached.tender.terms.bid_deadline <= self.cache.clock().now() {
            return Ok(0);
        }
        let policy = self.policies.by_digest(&cached.tender.policy_digest).await?;
        let rows: Vec<crate::store::BidRow> = cached
            .bids
            .iter()
            .filter(|bid| codes.is_none_or(|c| bid.bidder.codes().iter().any(|code| c.contains(code))))
            .cloned()
            .collect();
        for page in rows.chunks(super::commands::MAX_TABLE_PAGE) {
            self.table_answers(&cached.tender, &policy, page, None).await?;
        }
        Ok(rows.len() as u32)
    }

    /// One bidder's answer, as the cache holds it.
    async fn assess_one(&self, caller: &Caller, cmd: Assess) -> Result<Arc<CachedAnswer>, ApiError> {
        let (cached, policy) = self.tender(caller, Action::Assess, &cmd.bid.tender_id).await?;
        self.assess(&cached.tender, &policy, &cmd.bid.bidder, cmd.contract_price, Turn::Refuse, With::Nothing).await
    }

    /// The registered bids' signed statements, in bid order, a page at a time.
    pub async fn assess_tender_table(&self, caller: &Caller, req: &TablePage) -> Result<pb::AssessTenderResponse, ApiError> {
        let (cached, policy) = self.tender(caller, Action::AssessTender, &req.tender_id).await?;
        let (rows, next) = req.page(&cached.bids)?;
        let answers = self.table_answers(&cached.tender, &policy, rows, None).await?;
        let bids = rows
            .iter()
            .zip(answers)
            .map(|(row, a)| pb::AssessedBid {
                bid: Some(bid_to_proto(&cached.tender.tender_id, row)),
                assessment: Some(a.response.clone()),
            })
            .collect();
        Ok(pb::AssessTenderResponse { bids, next_page_token: next })
    }

    /// The same page as [`Self::assess_tender_table`], as it goes on the
    /// wire: from the tender's encoded table while nothing it depends on
    /// changed, else with the frames of changed rows rebuilt.
    pub async fn assess_tender_encoded(&self, caller: &Caller, req: &TablePage) -> Result<Encoded, ApiError> {
        let (cached, policy) = self.tender(caller, Action::AssessTender, &req.tender_id).await?;
        let (rows, next) = req.page(&cached.bids)?;
        // Checked before the answers are: each answer then reflects this
        // data version or a newer one, never an older.
        let data_version = self.cache.data_version().await?;
        let stamp = (self.cache.enabled() && self.cache.unconfirmed_for().is_none()).then(|| Stamp {
            tender: cached.clone(),
            data_version,
            key_id: self.keys.get().active_key_id().to_owned(),
        });
        if let Some(stamp) = &stamp
            && let Some(page) = self.tables.page(stamp, rows, &next).await
        {
            return Ok(page);
        }
        let check = stamp.as_ref().map(|stamp| TableCheck { stamp, uncovered: Default::default() });
        let answers = self.table_answers(&cached.tender, &policy, rows, check.as_ref()).await?;
        // The table is kept only if its stamp names every row's inputs.
        let covered = check.is_some_and(|c| !c.uncovered.into_inner());
        let stamp = stamp.filter(|_| covered);
        Ok(self.tables.build(stamp, &cached, rows, &answers, &next).await)
    }

    /// Each row's answer, in bid order. Rows not cached need a store read and
    /// a signature each: up to TABLE_CONCURRENCY of them at once (the store's
    /// pool size), which also lets the log commit their leaves together.
    async fn table_answers(
        &self,
        tender: &Tender,
        policy: &Policy,
        rows: &[crate::store::BidRow],
        table: Option<&TableCheck<'_>>,
    ) -> Result<Vec<Arc<CachedAnswer>>, ApiError> {
        let with = table.map_or(With::Nothing, With::Table);
        use futures_util::{StreamExt, TryStreamExt};
        // Every bidder's profile not cached, in one store round trip.
        let version = self.cache.data_version().await?;
        let codes: Vec<&CreditCode> = rows.iter().flat_map(|row| row.bidder.codes()).collect();
        self.cache.prefetch(&codes, version).await?;
        let rows: Vec<_> = rows.iter().map(|row| self.assess(tender, policy, &row.bidder, None, Turn::Wait, with)).collect();
        futures_util::stream::iter(rows).buffered(TABLE_CONCURRENCY).try_collect().await
    }

    async fn check_deposit(&self, caller: &Caller, cmd: CheckDeposit) -> Result<pb::CheckDepositResponse, ApiError> {
        let CheckDeposit { bid, offered, form, contract_price } = cmd;
        let (cached, policy) = self.tender(caller, Action::CheckDeposit, &bid.tender_id).await?;
        // The deposit check is a new statement every time, and the
        // assessment may be; both are logged in one group commit, so the
        // call waits on one commit and takes one place, before anything is
        // signed, so that a refusal leaves nothing signed.
        let _place = self.signing_places(Turn::Refuse, 1).await?;
        let offer = DepositOffer { offered, form, policy_id: &policy.id, made: Default::default() };
        let assessed = self.assess(&cached.tender, &policy, &bid.bidder, contract_price, Turn::Held, With::Deposit(&offer)).await?;
        // A new assessment brought its deposit check along, logged with it.
        if let Some(made) = offer.made.into_inner().expect("not poisoned") {
            return Ok(made);
        }
        let statement = assessed.response.statement.clone().expect("assess always returns a statement");
        let check = deposit_check(statement, offered, form, &policy.id);
        let envelope = self.sign(DEPOSIT_CHECK_PAYLOAD_TYPE, &check);
        let log_index = self.record(&envelope).await?;
        Ok(pb::CheckDepositResponse { envelope: Some(envelope), check: Some(check), log_index })
    }
}

/// The deposit check of an offer against an assessment: what is owed, in
/// which form, and whether the offer covers it.
pub(crate) fn deposit_check(statement: pb::AssessmentStatement, offered: Fen, form: DepositForm, policy_id: &str) -> pb::DepositCheck {
    let owed = Fen(statement.deposit_owed_fen);
    let guarantee_refused = form == DepositForm::CreditGuarantee && !statement.credit_guarantee_allowed;
    let counted = if guarantee_refused { Fen(0) } else { offered };
    let shortfall = Fen((owed.0 - counted.0).max(0));
    let satisfied = shortfall.0 == 0;
    let grade = &statement.applied_grade;
    let (message, message_zh) = if guarantee_refused {
        (
            format!(
                "a credit guarantee is not accepted for grade {grade} under policy {policy_id}: lodge {owed} in cash or another accepted form"
            ),
            format!("按规则{policy_id}，{grade}级不可使用信用保函：须以现金或其他认可形式缴纳{owed}"),
        )
    } else if satisfied {
        (format!("the offer of {offered} covers the deposit owed, {owed}"), format!("提交的{offered}足额覆盖应缴投标保证金{owed}"))
    } else {
        (
            format!("the offer of {offered} falls short of the deposit owed, {owed}, by {shortfall}"),
            format!("提交的{offered}低于应缴投标保证金{owed}，差额{shortfall}"),
        )
    };
    pb::DepositCheck {
        statement_type: "credit-tender/deposit-check/v1".into(),
        assessment: Some(statement),
        offered_fen: offered.0,
        form: form.to_string(),
        satisfied,
        shortfall_fen: shortfall.0,
        message,
        message_zh,
    }
}

#[tonic::async_trait]
impl pb::assessment_service_server::AssessmentService for AssessmentApi {
    async fn assess(&self, r: Request<pb::AssessRequest>) -> Result<Response<pb::AssessResponse>, Status> {
        let cmd = Assess::parse(r.get_ref(), &self.rules)?;
        Ok(Response::new(self.assess_one(&caller(&r), cmd).await?.response.clone()))
    }

    async fn assess_tender(&self, r: Request<pb::AssessTenderRequest>) -> Result<Response<pb::AssessTenderResponse>, Status> {
        let page = TablePage::parse(r.get_ref())?;
        Ok(Response::new(self.assess_tender_table(&caller(&r), &page).await?))
    }

    async fn check_deposit(&self, r: Request<pb::CheckDepositRequest>) -> Result<Response<pb::CheckDepositResponse>, Status> {
        let cmd = CheckDeposit::parse(r.get_ref(), &self.rules)?;
        Ok(Response::new(self.check_deposit(&caller(&r), cmd).await?))
    }

    type WatchTenderStream = WatchStream;

    async fn watch_tender(&self, r: Request<pb::WatchTenderRequest>) -> Result<Response<WatchStream>, Status> {
        Ok(Response::new(self.watch_tender(&caller(&r), r.get_ref()).await?))
    }
}

impl Statements for AssessmentApi {
    async fn make_statements(&self, id: &TenderId) -> Result<u32, ApiError> {
        self.refresh_tender(id, None).await
    }
}

/// `AssessmentService` on the wire: Assess answers with the cached encoded
/// bytes through a codec of its own; every other method, and the contract
/// seen by reflection, grpcurl and other clients, is the generated server's.
#[derive(Clone)]
pub struct AssessmentRoutes {
    api: AssessmentApi,
    inner: pb::assessment_service_server::AssessmentServiceServer<AssessmentApi>,
    max_message_bytes: usize,
}

impl AssessmentRoutes {
    pub fn new(api: AssessmentApi, max_message_bytes: usize) -> Self {
        let inner = pb::assessment_service_server::AssessmentServiceServer::new(api.clone())
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes);
        AssessmentRoutes { api, inner, max_message_bytes }
    }
}

impl tonic::server::NamedService for AssessmentRoutes {
    const NAME: &'static str = <pb::assessment_service_server::AssessmentServiceServer<AssessmentApi> as tonic::server::NamedService>::NAME;
}

const ASSESS_PATH: &str = "/credit_tender.v1.AssessmentService/Assess";
const ASSESS_TENDER_PATH: &str = "/credit_tender.v1.AssessmentService/AssessTender";

impl<B> tower::Service<tonic::codegen::http::Request<B>> for AssessmentRoutes
where
    B: http_body::Body<Data = prost::bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = tonic::codegen::http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = futures_util::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: tonic::codegen::http::Request<B>) -> Self::Future {
        let (api, max) = (self.api.clone(), self.max_message_bytes);
        match req.uri().path() {
            ASSESS_PATH => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(wire::EncodedCodec::default()).apply_max_message_size_config(Some(max), Some(max));
                Ok(grpc.unary(wire::EncodedAssess(api), req).await)
            }),
            ASSESS_TENDER_PATH => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(wire::EncodedCodec::default()).apply_max_message_size_config(Some(max), Some(max));
                Ok(grpc.unary(wire::EncodedTable(api), req).await)
            }),
            _ => Box::pin(self.inner.call(req)),
        }
    }
}

/// The codec under Assess and AssessTender: requests decoded by prost,
/// answers written as the bytes the caches keep.
mod wire {
    use crate::proto::v1 as pb;
    use crate::service::assessment::AssessmentApi;
    use crate::service::authorize::caller;
    use crate::service::commands::{Assess, TablePage};
    use crate::service::table::Encoded;
    use prost::Message;
    use prost::bytes::BufMut;
    use std::marker::PhantomData;
    use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
    use tonic::{Request, Response, Status};

    pub(super) struct EncodedCodec<M>(PhantomData<M>);

    impl<M> Default for EncodedCodec<M> {
        fn default() -> Self {
            EncodedCodec(PhantomData)
        }
    }

    pub(super) struct BytesEncoder;

    pub(super) struct RequestDecoder<M>(PhantomData<M>);

    impl<M: Message + Default + Send + 'static> Codec for EncodedCodec<M> {
        type Encode = Encoded;
        type Decode = M;
        type Encoder = BytesEncoder;
        type Decoder = RequestDecoder<M>;
        fn encoder(&mut self) -> BytesEncoder {
            BytesEncoder
        }
        fn decoder(&mut self) -> RequestDecoder<M> {
            RequestDecoder(PhantomData)
        }
    }

    impl Encoder for BytesEncoder {
        type Item = Encoded;
        type Error = Status;
        fn encode(&mut self, item: Encoded, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
            dst.reserve(item.len());
            for part in &item.0 {
                dst.put_slice(part);
            }
            Ok(())
        }
    }

    impl<M: Message + Default + Send + 'static> Decoder for RequestDecoder<M> {
        type Item = M;
        type Error = Status;
        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<M>, Status> {
            // The same status as tonic-prost's, which `wire_errors` turns into INVALID_ARGUMENT.
            M::decode(src).map(Some).map_err(|e| Status::internal(format!("failed to decode Protobuf message: {e}")))
        }
    }

    pub(super) struct EncodedAssess(pub AssessmentApi);

    impl tonic::server::UnaryService<pb::AssessRequest> for EncodedAssess {
        type Response = Encoded;
        type Future = futures_util::future::BoxFuture<'static, Result<Response<Encoded>, Status>>;
        fn call(&mut self, r: Request<pb::AssessRequest>) -> Self::Future {
            let api = self.0.clone();
            Box::pin(async move {
                let cmd = Assess::parse(r.get_ref(), &api.rules)?;
                Ok(Response::new(Encoded(vec![api.assess_one(&caller(&r), cmd).await?.encoded.clone()])))
            })
        }
    }

    pub(super) struct EncodedTable(pub AssessmentApi);

    impl tonic::server::UnaryService<pb::AssessTenderRequest> for EncodedTable {
        type Response = Encoded;
        type Future = futures_util::future::BoxFuture<'static, Result<Response<Encoded>, Status>>;
        fn call(&mut self, r: Request<pb::AssessTenderRequest>) -> Self::Future {
            let api = self.0.clone();
            Box::pin(async move {
                let page = TablePage::parse(r.get_ref())?;
                Ok(Response::new(api.assess_tender_encoded(&caller(&r), &page).await?))
            })
        }
    }
}
