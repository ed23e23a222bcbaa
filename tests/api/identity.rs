//! Tokens by attack: every kind of bad token is a 401, revocation is immediate, a token never
//! reaches further than its holder, and an external identity provider's tokens are mapped.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::both_databases;
use crate::helpers::{As, Backend, TestApp, spawn_app, spawn_with};

const VIEWER: &str = "{ viewer { subject role network { key } region { code } organisation { key } scopes tokenId expiresAt issuer } }";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn secret(app: &TestApp) -> Vec<u8> {
    let text = std::fs::read_to_string(app.settings.data_dir.join("token-secret")).unwrap();
    URL_SAFE_NO_PAD.decode(text.trim()).unwrap()
}

fn sign(alg: Algorithm, key: &[u8], claims: &Value) -> String {
    encode(&Header::new(alg), claims, &EncodingKey::from_secret(key)).unwrap()
}

async fn assert_401(app: &TestApp, token: &str, what: &str) {
    let r = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("authorization", format!("Bearer {token}"))
        .json(&json!({"query": VIEWER}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "{what} must be refused");
    assert!(
        r.headers().get("www-authenticate").is_some(),
        "{what}: no WWW-Authenticate"
    );
    let body: Value = r.json().await.unwrap();
    assert!(body.get("data").is_none(), "{what}: {body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{what}: {body}"
    );
}

async fn every_bad_token_is_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let (good, jti) = app.issue(As::Admin("black-country"), "", None).await;
    let d = app.query_as(&good, VIEWER, json!({})).await;
    assert_eq!(d["viewer"]["role"], "NETWORK_ADMIN");

    let key = secret(&app);
    let t = now();
    let claims = |f: &dyn Fn(&mut Value)| {
        let mut c = json!({"iss": "anchorfed", "aud": "anchorfed", "sub": "x", "iat": t, "nbf": t,
                           "exp": t + 3600, "jti": jti, "role": "NETWORK_ADMIN", "network": "black-country"});
        f(&mut c);
        c
    };
    // A re-signed copy of the good claims verifies: the harness itself is sound.
    app.query_as(
        &sign(Algorithm::HS256, &key, &claims(&|_| {})),
        VIEWER,
        json!({}),
    )
    .await;

    let forged = sign(
        Algorithm::HS256,
        b"not-the-secret-not-the-secret-not",
        &claims(&|_| {}),
    );
    assert_401(&app, &forged, "forged signature").await;
    // Also a real signature with one byte of the payload changed.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    payload["network"] = json!("sandwell");
    parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
    assert_401(&app, &parts.join("."), "tampered claims").await;

    let expired = sign(
        Algorithm::HS256,
        &key,
        &claims(&|c| {
            c["iat"] = json!(t - 7200);
            c["nbf"] = json!(t - 7200);
            c["exp"] = json!(t - 3600);
        }),
    );
    assert_401(&app, &expired, "expired").await;
    let early = sign(
        Algorithm::HS256,
        &key,
        &claims(&|c| c["nbf"] = json!(t + 3600)),
    );
    assert_401(&app, &early, "not yet valid").await;
    let aud = sign(
        Algorithm::HS256,
        &key,
        &claims(&|c| c["aud"] = json!("someone-else")),
    );
    assert_401(&app, &aud, "wrong audience").await;
    let iss = sign(
        Algorithm::HS256,
        &key,
        &claims(&|c| c["iss"] = json!("evil")),
    );
    assert_401(&app, &iss, "unknown issuer").await;
    let hs512 = sign(Algorithm::HS512, &key, &claims(&|_| {}));
    assert_401(&app, &hs512, "an algorithm that is not pinned").await;
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims(&|_| {}).to_string())
    );
    assert_401(&app, &none, "alg none").await;
    let unknown_jti = sign(
        Algorithm::HS256,
        &key,
        &claims(&|c| c["jti"] = json!("never-issued")),
    );
    assert_401(
        &app,
        &unknown_jti,
        "a signed token this service never issued",
    )
    .await;
    let no_exp = sign(
        Algorithm::HS256,
        &key,
        &claims(&|c| {
            c.as_object_mut().unwrap().remove("exp");
        }),
    );
    assert_401(&app, &no_exp, "no exp").await;
    for garbage in ["garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30", "..."] {
        assert_401(&app, garbage, garbage).await;
    }

    // Schemes other than Bearer, and an empty bearer, are refused too.
    for header in ["Basic dXNlcjpwYXNz", "Bearer ", "Token abc"] {
        let r = app
            .client
            .post(format!("{}/graphql", app.address))
            .header("authorization", header)
            .json(&json!({"query": VIEWER}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{header}");
    }
    // Without any Authorization header the caller is anonymous.
    let d = app.query(VIEWER, json!({})).await;
    assert_eq!(d["viewer"], Value::Null);
}

async fn viewer_shows_the_caller(backend: Backend) {
    let app = spawn_app(backend).await;
    let (token, id) = app
        .issue(
            As::Submitter("sandwell"),
            "write:returns metrics:spend",
            Some(3600),
        )
        .await;
    let v = app.query_as(&token, VIEWER, json!({})).await["viewer"].clone();
    assert_eq!(v["role"], "NETWORK_SUBMITTER");
    assert_eq!(v["network"]["key"], "sandwell");
    assert_eq!(v["scopes"], json!(["write:returns", "metrics:spend"]));
    assert_eq!(v["tokenId"], id);
    assert_eq!(v["issuer"], "anchorfed");
    let exp = chrono::DateTime::parse_from_rfc3339(v["expiresAt"].as_str().unwrap()).unwrap();
    assert!((exp.timestamp() - now() - 3600).abs() < 60);
    let analyst = app.token(As::Analyst("E47000007"), "").await;
    let v = app.query_as(&analyst, VIEWER, json!({})).await["viewer"].clone();
    assert_eq!(
        (v["role"].as_str(), v["region"]["code"].as_str()),
        (Some("REGION_ANALYST"), Some("E47000007"))
    );
    let op = app.token(As::Operator, "").await;
    let org = "mutation { createOrganisation(input: {key: \"wm-research\", name: \"A research group\"}) { id } }";
    app.query_as(&op, org, json!({})).await;
    let researcher = app
        .token(As::Researcher("wm-research"), "read:impact")
        .await;
    let v = app.query_as(&researcher, VIEWER, json!({})).await["viewer"].clone();
    assert_eq!(
        (v["role"].as_str(), v["organisation"]["key"].as_str()),
        (Some("RESEARCHER"), Some("wm-research"))
    );
}

const ISSUE: &str = "mutation($i: IssueTokenInput!) { issueToken(input: $i) { id token expiresAt info { role scopes issuedBy } } }";
const REVOKE: &str = "mutation($id: ID!) { revokeToken(id: $id) { id revokedAt } }";

async fn revoked_token_stops_on_the_next_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.token(As::Admin("sandwell"), "").await;
    let issued = app
        .query_as(&admin, ISSUE, json!({"i": {"role": "NETWORK_SUBMITTER", "network": "sandwell", "subject": "sandwell-ledger-sync"}}))
        .await["issueToken"]
        .clone();
    let token = issued["token"].as_str().unwrap();
    assert_eq!(issued["info"]["role"], "NETWORK_SUBMITTER");
    // The default lifetime is 30 days.
    let exp = chrono::DateTime::parse_from_rfc3339(issued["expiresAt"].as_str().unwrap()).unwrap();
    assert!((exp.timestamp() - now() - 30 * 86400).abs() < 120);
    app.query_as(token, VIEWER, json!({})).await;

    // Another network's admin may not revoke it; its own network's admin may.
    let other = app.token(As::Admin("birmingham"), "").await;
    assert_eq!(
        app.error_as(&other, REVOKE, json!({"id": issued["id"]}))
            .await,
        "FORBIDDEN"
    );
    app.query_as(token, VIEWER, json!({})).await;
    let r = app
        .query_as(&admin, REVOKE, json!({"id": issued["id"]}))
        .await;
    assert!(r["revokeToken"]["revokedAt"].is_string());
    assert_401(&app, token, "revoked").await;

    // A token may revoke itself (logging out).
    let (me, my_id) = app.issue(As::Analyst("E47000007"), "", None).await;
    app.query_as(&me, REVOKE, json!({"id": my_id})).await;
    assert_401(&app, &me, "self-revoked").await;
    assert_eq!(
        app.error_as(&admin, REVOKE, json!({"id": "no-such-token"}))
            .await,
        "NOT_FOUND"
    );
}

async fn scopes_outside_the_grammar_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let op = app.token(As::Operator, "").await;
    for bad in [
        vec!["admin:all"],
        vec!["metrics:money"],
        vec!["years:2024/23"],
        vec!["network:no-such-network"],
    ] {
        let (_, body) = app
            .post_as(
                &op,
                ISSUE,
                json!({"i": {"role": "REGION_ANALYST", "region": "E47000007", "scopes": bad}}),
            )
            .await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{bad:?}: {body}"
        );
        assert_eq!(
            body["errors"][0]["extensions"]["field"], "input.scopes",
            "{bad:?}"
        );
    }
    // The grammar's own entries are fine, and come back canonical.
    let d = app
        .query_as(&op, ISSUE, json!({"i": {"role": "REGION_ANALYST", "region": "E47000007",
            "scopes": ["years:2021/22-2023/24", "metrics:spend", "read:impact", "network:black-country"]}}))
        .await;
    assert_eq!(
        d["issueToken"]["info"]["scopes"],
        json!([
            "read:impact",
            "metrics:spend",
            "years:2021/22-2023/24",
            "network:black-country"
        ])
    );
    // Anchors must fit the role.
    let (_, body) = app
        .post_as(&op, ISSUE, json!({"i": {"role": "NETWORK_ADMIN"}}))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["field"], "input.network",
        "{body}"
    );
    let (_, body) = app
        .post_as(
            &op,
            ISSUE,
            json!({"i": {"role": "OPERATOR", "network": "sandwell"}}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{body}"
    );
    let (_, body) = app
        .post_as(
            &op,
            ISSUE,
            json!({"i": {"role": "OPERATOR", "ttlSeconds": 400000000}}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["field"], "input.ttlSeconds",
        "{body}"
    );
}

async fn tokens_never_reach_further_than_their_issuer(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.token(As::Admin("sandwell"), "").await;
    let ask = |role: &str, network: Option<&str>, scopes: Option<Vec<&str>>| json!({"i": {"role": role, "network": network, "scopes": scopes}});
    // Its own network's submitters: yes. Anything else: no.
    app.query_as(
        &admin,
        ISSUE,
        ask("NETWORK_SUBMITTER", Some("sandwell"), None),
    )
    .await;
    assert_eq!(
        app.error_as(
            &admin,
            ISSUE,
            ask("NETWORK_SUBMITTER", Some("birmingham"), None)
        )
        .await,
        "FORBIDDEN"
    );
    assert_eq!(
        app.error_as(&admin, ISSUE, ask("NETWORK_ADMIN", Some("sandwell"), None))
            .await,
        "FORBIDDEN"
    );
    assert_eq!(
        app.error_as(&admin, ISSUE, json!({"i": {"role": "OPERATOR"}}))
            .await,
        "FORBIDDEN"
    );
    // A narrowed admin issues only as narrow.
    let narrow = app.token(As::Admin("sandwell"), "metrics:spend").await;
    app.query_as(
        &narrow,
        ISSUE,
        ask(
            "NETWORK_SUBMITTER",
            Some("sandwell"),
            Some(vec!["metrics:spend"]),
        ),
    )
    .await;
    assert_eq!(
        app.error_as(
            &narrow,
            ISSUE,
            ask("NETWORK_SUBMITTER", Some("sandwell"), None)
        )
        .await,
        "FORBIDDEN"
    );
    // Submitters, analysts and researchers issue nothing; nobody issues without a token.
    let sub = app.token(As::Submitter("sandwell"), "").await;
    assert_eq!(
        app.error_as(
            &sub,
            ISSUE,
            ask("NETWORK_SUBMITTER", Some("sandwell"), None)
        )
        .await,
        "FORBIDDEN"
    );
    let (_, body) = app
        .post_graphql(ISSUE, ask("NETWORK_SUBMITTER", Some("sandwell"), None))
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    // The refusal says nothing of why.
    let (_, body) = app
        .post_as(
            &sub,
            ISSUE,
            ask("NETWORK_SUBMITTER", Some("sandwell"), None),
        )
        .await;
    assert_eq!(
        body["errors"][0]["message"],
        "you are not allowed to do this"
    );
}

async fn external_identity_provider_tokens_are_mapped(backend: Backend) {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let app = spawn_with(backend, true, |s| {
        s.auth.external.push(anchorfed::config::ExternalIssuer {
            issuer: "https://idp.example.test".into(),
            audience: "anchorfed-wm".into(),
            jwks_file: fixtures.join("idp-test-jwks.json"),
            algorithms: vec!["EdDSA".into()],
            claims: anchorfed::config::ClaimMapping {
                role: "groups".into(),
                network: "anchor_network".into(),
                roles: [("coordinator".to_owned(), "NETWORK_ADMIN".to_owned())].into(),
                ..Default::default()
            },
        });
    })
    .await;
    let private = std::fs::read(fixtures.join("idp-test-private.pem")).unwrap();
    let key = EncodingKey::from_ed_pem(&private).unwrap();
    let t = now();
    let claims = |f: &dyn Fn(&mut Value)| {
        let mut c = json!({"iss": "https://idp.example.test", "aud": "anchorfed-wm", "sub": "jo@sandwell.example",
                           "iat": t, "exp": t + 600, "groups": "coordinator", "anchor_network": "sandwell"});
        f(&mut c);
        c
    };
    let with_kid = |kid: &str, c: &Value| {
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(kid.to_owned());
        encode(&h, c, &key).unwrap()
    };
    let good = with_kid("idp-key-1", &claims(&|_| {}));
    let v = app.query_as(&good, VIEWER, json!({})).await["viewer"].clone();
    assert_eq!(v["role"], "NETWORK_ADMIN");
    assert_eq!(v["network"]["key"], "sandwell");
    assert_eq!(v["subject"], "jo@sandwell.example");
    assert_eq!(v["issuer"], "https://idp.example.test");
    // The mapped claims carry the mapped rights: its own network, no other.
    let upd = "mutation($id: ID!) { updateNetwork(id: $id, input: {governance: \"Rotating chair\"}) { governance } }";
    app.query_as(&good, upd, json!({"id": "sandwell"})).await;
    assert_eq!(
        app.error_as(&good, upd, json!({"id": "birmingham"})).await,
        "FORBIDDEN"
    );

    assert_401(
        &app,
        &with_kid("idp-key-2", &claims(&|_| {})),
        "unknown kid",
    )
    .await;
    assert_401(
        &app,
        &with_kid("idp-key-1", &claims(&|c| c["aud"] = json!("anchorfed"))),
        "the IdP's wrong audience",
    )
    .await;
    assert_401(
        &app,
        &with_kid("idp-key-1", &claims(&|c| c["groups"] = json!("superuser"))),
        "an unmapped role",
    )
    .await;
    assert_401(
        &app,
        &with_kid(
            "idp-key-1",
            &claims(&|c| c["anchor_network"] = json!("atlantis")),
        ),
        "an unknown network",
    )
    .await;
    assert_401(
        &app,
        &with_kid("idp-key-1", &claims(&|c| c["exp"] = json!(t - 600))),
        "expired",
    )
    .await;
    // HS256 signed with the public key as the secret: the classic key-confusion attack.
    let public = std::fs::read(fixtures.join("idp-test-public.pem")).unwrap();
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("idp-key-1".into());
    let confused = encode(&h, &claims(&|_| {}), &EncodingKey::from_secret(&public)).unwrap();
    assert_401(&app, &confused, "HS256 with the public key").await;
}

/// A node configured with an EdDSA key pair signs with it and verifies with the public half.
async fn asymmetric_signing_keys(backend: Backend) {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let app = spawn_with(backend, true, |s| {
        s.auth.algorithm = anchorfed::config::SigningAlgorithm::EdDSA;
        s.auth.private_key_file = Some(fixtures.join("idp-test-private.pem"));
        s.auth.public_key_file = Some(fixtures.join("idp-test-public.pem"));
        s.auth.key_id = Some("node-1".into());
    })
    .await;
    let token = app.token(As::Operator, "").await;
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(
        (header.alg, header.kid.as_deref()),
        (Algorithm::EdDSA, Some("node-1"))
    );
    assert_eq!(
        app.query_as(&token, VIEWER, json!({})).await["viewer"]["role"],
        "OPERATOR"
    );
    // No secret file was made: only the key pair signs.
    assert!(!app.settings.data_dir.join("token-secret").exists());
}

both_databases!(
    every_bad_token_is_401,
    viewer_shows_the_caller,
    revoked_token_stops_on_the_next_request,
    scopes_outside_the_grammar_are_refused,
    tokens_never_reach_further_than_their_issuer,
    external_identity_provider_tokens_are_mapped,
    asymmetric_signing_keys,
);
