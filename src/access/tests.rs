use super::principals::Principals;
use super::*;
use crate::domain::input::parse_record;

fn now() -> DateTime<Utc> {
    chrono::DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap().to_utc()
}

fn principal(role: Role, scope: Scope) -> Caller {
    Caller::Principal(Arc::new(Principal { name: format!("{role}-1"), role, scope }))
}

fn platform() -> Caller {
    principal(Role::Platform, Scope::Platform { regions: vec![RegionCode::parse("440000").unwrap()] })
}

fn provider() -> Caller {
    let scope = Scope::Provider {
        issuers: vec![Issuer::parse("140000").unwrap()],
        authorities: vec!["山西省交通运输厅".into()],
        commitments: false,
    };
    principal(Role::Provider, scope)
}

fn record(v: serde_json::Value) -> Record {
    let rules = crate::rules::Rules::shipped();
    parse_record(v.as_object().unwrap(), rules.input()).unwrap().record
}

fn evaluation(issuer: &str) -> Record {
    record(serde_json::json!({"type": "evaluation", "id": "e", "document_ref": "r", "credit_code": "91440300192317458F",
        "entity_name": "x", "domain": "highway_construction", "issuer": issuer, "year": 2025, "grade": "A",
        "valid_from": "2026-01-01", "valid_to": "2026-12-31"}))
}

#[test]
fn local_allows_and_anonymous_is_unauthenticated() {
    let id = TenderId::parse("T").unwrap();
    let r = Resource::Tender { id: &id, region: RegionCode::parse("440300").unwrap() };
    assert_eq!(decide(&Caller::Local, Action::AmendTender, r, now()), Decision::Allow);
    assert!(matches!(decide(&Caller::Anonymous, Action::AmendTender, r, now()), Decision::Unauthenticated(_)));
}

#[test]
fn platforms_act_on_their_regions_and_never_learn_of_others() {
    let id = TenderId::parse("T").unwrap();
    let mine = Resource::Tender { id: &id, region: RegionCode::parse("440305").unwrap() };
    let other = Resource::Tender { id: &id, region: RegionCode::parse("140100").unwrap() };
    for a in [Action::AmendTender, Action::RegisterBid, Action::Assess, Action::GrantCommitteeAccess] {
        assert_eq!(decide(&platform(), a, mine, now()), Decision::Allow, "{a:?}");
        assert_eq!(decide(&platform(), a, other, now()), Decision::NotFound, "{a:?}");
    }
    // Where its own tender is to be: refused naming the rule, whether registered or moved there.
    let here = Resource::Placement { id: &id, region: RegionCode::parse("440305").unwrap() };
    let there = Resource::Placement { id: &id, region: RegionCode::parse("140100").unwrap() };
    for a in [Action::RegisterTender, Action::AmendTender] {
        assert_eq!(decide(&platform(), a, here, now()), Decision::Allow, "{a:?}");
        let Decision::Deny(why) = decide(&platform(), a, there, now()) else { panic!("{a:?}") };
        assert_eq!(why, "platform 'platform-1' keeps tenders only in its regions (440000): 'T' may not be placed in 140100");
    }
    let Decision::Deny(why) = decide(&platform(), Action::PutRecords, Resource::Service, now()) else { panic!() };
    assert_eq!(why, "platform 'platform-1' may not call PutRecords");
}

#[test]
fn the_role_is_decided_before_any_tender_is_looked_up() {
    // What each role may do on tenders at all: the same whichever tender is asked for.
    assert_eq!(decide(&platform(), Action::AmendTender, Resource::AnyTender, now()), Decision::Allow);
    assert!(matches!(decide(&provider(), Action::ReadTender, Resource::AnyTender, now()), Decision::Deny(_)));
    let supervisor = principal(Role::Supervisor, Scope::Supervisor);
    assert_eq!(decide(&supervisor, Action::ReadTender, Resource::AnyTender, now()), Decision::Allow);
    assert!(matches!(decide(&supervisor, Action::RegisterBid, Resource::AnyTender, now()), Decision::Deny(_)));
    assert!(matches!(decide(&Caller::Anonymous, Action::Assess, Resource::AnyTender, now()), Decision::Unauthenticated(_)));
}

#[test]
fn providers_write_only_within_their_issuers_and_authorities() {
    let ok = evaluation("140000");
    let national = evaluation("national");
    assert_eq!(decide(&provider(), Action::PutRecords, Resource::Records(&[&ok]), now()), Decision::Allow);
    let Decision::Deny(why) = decide(&provider(), Action::PutRecords, Resource::Records(&[&ok, &national]), now()) else { panic!() };
    assert!(why.starts_with("records[1]: provider 'provider-1' may not write an evaluation issued by national"), "{why}");
    let code = CreditCode::parse_strict("91440300192317458F").unwrap();
    assert_eq!(decide(&provider(), Action::GetProfile, Resource::Profile { code: &code, written_by_caller: true }, now()), Decision::Allow);
    assert!(matches!(
        decide(&provider(), Action::GetProfile, Resource::Profile { code: &code, written_by_caller: false }, now()),
        Decision::Deny(_)
    ));
}

#[test]
fn committees_see_one_tender_until_the_grant_expires() {
    let mine = TenderId::parse("T1").unwrap();
    let other = TenderId::parse("T2").unwrap();
    let region = RegionCode::parse("440300").unwrap();
    let until = now() + chrono::Duration::hours(1);
    let c = principal(Role::Committee, Scope::Committee { tender: mine.clone(), expires_at: until });
    let on = |id| Resource::Tender { id, region };
    assert_eq!(decide(&c, Action::ViewCommitteePage, on(&mine), now()), Decision::Allow);
    assert_eq!(decide(&c, Action::ViewCommitteePage, on(&other), now()), Decision::NotFound);
    assert!(matches!(decide(&c, Action::Assess, on(&mine), now()), Decision::Deny(_)));
    let later = until + chrono::Duration::seconds(1);
    assert!(matches!(decide(&c, Action::ViewCommitteePage, on(&mine), later), Decision::Unauthenticated(_)));
}

#[test]
fn supervisors_read_everything_and_write_nothing() {
    let s = principal(Role::Supervisor, Scope::Supervisor);
    for a in [Action::GetProfile, Action::ReadTender, Action::ListTenders, Action::AssessTender, Action::ReadMetrics] {
        assert_eq!(decide(&s, a, Resource::Service, now()), Decision::Allow, "{a:?}");
    }
    assert!(matches!(decide(&s, Action::PutRecords, Resource::Service, now()), Decision::Deny(_)));
}

const GOOD: &str = r#"
[limits.platform]
requests_per_second = 5
burst = 5
concurrent = 2

[[principal]]
name = "gd-platform"
role = "platform"
regions = ["440000"]
token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

[[principal]]
name = "sx-provider"
role = "provider"
issuers = ["140000"]
certificate_subject = "CN=sx-provider"
"#;

#[test]
fn principals_are_found_by_token_and_certificate() {
    let p = Principals::from_toml(GOOD).unwrap();
    assert_eq!(p.by_token("test").unwrap().0.name, "gd-platform"); // sha256("test")
    assert!(p.by_token("tes").is_none());
    assert_eq!(p.by_certificate_subject("CN=sx-provider").unwrap().0.role, Role::Provider);
    assert_eq!(p.limits(Role::Platform).concurrent, 2);
}

#[test]
fn bad_principal_files_name_the_line_and_the_reason() {
    let err = |from: &str, to: &str| Principals::from_toml(&GOOD.replacen(from, to, 1)).unwrap_err();
    assert_eq!(
        err("role = \"platform\"", "role = \"admin\""),
        "line 7: role: unknown role 'admin', expected one of: provider, platform, committee, supervisor"
    );
    assert!(err("[\"440000\"]", "[\"44\"]").starts_with("line 7: regions: '44' is not a region code"));
    assert_eq!(err("sx-provider\"\nrole", "gd-platform\"\nrole"), "line 13: name 'gd-platform' is used by an earlier principal");
    assert!(err("regions = [", "regions = [[").starts_with("line 11: "), "malformed TOML names its line");
    let same_token = GOOD.replace(
        "certificate_subject = \"CN=sx-provider\"",
        "token_sha256 = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"",
    );
    assert_eq!(
        Principals::from_toml(&same_token).unwrap_err(),
        "line 13: principal 'sx-provider' has the same token as an earlier principal"
    );
}
