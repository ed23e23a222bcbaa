//! Directory writes by role: operators build the directory, a network admin edits its own
//! network and stewarded institutions, and no network pulls another's institution in without
//! the steward's consent.

use serde_json::{Value, json};

use crate::both_databases;
use crate::helpers::{As, Backend, TestApp, spawn_app};

const INVITE: &str = "mutation($n: ID!, $i: ID!, $f: Date) { inviteMember(networkId: $n, institutionId: $i, from: $f) { id status from to network { key } } }";
const ACCEPT: &str = "mutation($id: ID!) { acceptMembership(id: $id) { id status } }";
const END: &str = "mutation($id: ID!, $to: Date!) { endMembership(id: $id, to: $to) { id to } }";
const MEMBERS: &str = "query($n: ID!) { network(id: $n) { members(first: 100) { totalCount edges { node { key } } } } }";

async fn member_count(app: &TestApp, network: &str) -> u64 {
    app.query(MEMBERS, json!({"n": network})).await["network"]["members"]["totalCount"]
        .as_u64()
        .unwrap()
}

async fn membership_id(app: &TestApp, institution: &str, network: &str) -> Value {
    let d = app
        .query(
            "query($i: ID!) { institution(id: $i) { memberships { id network { key } } } }",
            json!({"i": institution}),
        )
        .await;
    d["institution"]["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["network"]["key"] == network)
        .unwrap_or_else(|| panic!("{institution} has no membership of {network}"))["id"]
        .clone()
}

async fn invited_member_counts_only_once_the_steward_accepts(backend: Backend) {
    let app = spawn_app(backend).await;
    let bham = app.token(As::Admin("birmingham"), "").await;
    let sandwell = app.token(As::Admin("sandwell"), "").await;
    let bc = app.token(As::Admin("black-country"), "").await;
    assert_eq!(member_count(&app, "birmingham").await, 6);

    // Birmingham invites a Sandwell-stewarded college.
    let m = app
        .query_as(
            &bham,
            INVITE,
            json!({"n": "birmingham", "i": "sandwell-college"}),
        )
        .await["inviteMember"]
        .clone();
    assert_eq!(m["status"], "INVITED");
    assert_eq!(
        member_count(&app, "birmingham").await,
        6,
        "an invitation is not a membership"
    );
    let invited = app
        .query(MEMBERS, json!({"n": "birmingham"}))
        .await
        .to_string()
        .contains("sandwell-college");
    assert!(!invited);

    // Only the steward's admin may accept: not the inviter, not another network.
    assert_eq!(
        app.error_as(&bham, ACCEPT, json!({"id": m["id"]})).await,
        "FORBIDDEN"
    );
    assert_eq!(
        app.error_as(&bc, ACCEPT, json!({"id": m["id"]})).await,
        "FORBIDDEN"
    );
    let a = app
        .query_as(&sandwell, ACCEPT, json!({"id": m["id"]}))
        .await;
    assert_eq!(a["acceptMembership"]["status"], "ACTIVE");
    assert_eq!(member_count(&app, "birmingham").await, 7);
    // Accepting twice is a conflict, not a second membership.
    assert_eq!(
        app.error_as(&sandwell, ACCEPT, json!({"id": m["id"]}))
            .await,
        "CONFLICT"
    );
    // And a second invitation overlapping the first is refused.
    assert_eq!(
        app.error_as(
            &bham,
            INVITE,
            json!({"n": "birmingham", "i": "sandwell-college"})
        )
        .await,
        "CONFLICT"
    );

    // Its steward network already counts it: a second membership there is a conflict.
    assert_eq!(
        app.error_as(
            &bc,
            INVITE,
            json!({"n": "black-country", "i": "dudley-council", "f": "2030-01-01"})
        )
        .await,
        "CONFLICT"
    );
    let op = app.token(As::Operator, "").await;
    let by_op = app
        .query_as(
            &op,
            INVITE,
            json!({"n": "wolverhampton", "i": "dudley-council"}),
        )
        .await;
    assert_eq!(
        by_op["inviteMember"]["status"], "ACTIVE",
        "an operator's invitation counts at once"
    );
}

async fn admins_cannot_touch_other_networks_memberships(backend: Backend) {
    let app = spawn_app(backend).await;
    let bc = app.token(As::Admin("black-country"), "").await;
    // Inviting into another network.
    assert_eq!(
        app.error_as(&bc, INVITE, json!({"n": "sandwell", "i": "dudley-council"}))
            .await,
        "FORBIDDEN"
    );
    // Ending a membership of another network, of an institution another network stewards.
    let id = membership_id(&app, "sandwell-leisure", "sandwell").await;
    assert_eq!(
        app.error_as(&bc, END, json!({"id": id, "to": "2025-03-31"}))
            .await,
        "FORBIDDEN"
    );
    assert_eq!(member_count(&app, "sandwell").await, 15);
    // Accepting on another steward's behalf was covered above; no token at all:
    let (_, body) = app
        .post_graphql(INVITE, json!({"n": "sandwell", "i": "dudley-council"}))
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    // A network admin removes a member from its own network, and the member leaves.
    let id = membership_id(&app, "sandwell-college", "black-country").await;
    let d = app
        .query_as(&bc, END, json!({"id": id, "to": "2024-03-31"}))
        .await;
    assert_eq!(d["endMembership"]["to"], "2024-03-31");
    assert_eq!(member_count(&app, "black-country").await, 14);
    let on = app
        .query("{ network(id: \"black-country\") { members(first: 100, on: \"2024-03-31\") { totalCount } } }", json!({}))
        .await;
    assert_eq!(
        on["network"]["members"]["totalCount"], 15,
        "the last day still counts"
    );
    // An end before the start is bad input.
    let id = membership_id(&app, "dudley-college", "black-country").await;
    let (_, body) = app
        .post_as(&bc, END, json!({"id": id, "to": "2001-01-01"}))
        .await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "to", "{body}");
}

async fn steward_membership_cannot_end_until_stewardship_moves(backend: Backend) {
    let app = spawn_app(backend).await;
    let bc = app.token(As::Admin("black-country"), "").await;
    let wolves = app.token(As::Admin("wolverhampton"), "").await;
    let op = app.token(As::Operator, "").await;
    let id = membership_id(&app, "wolves-hospitals", "black-country").await;
    assert_eq!(
        app.error_as(&bc, END, json!({"id": id, "to": "2025-03-31"}))
            .await,
        "CONFLICT"
    );

    let transfer = "mutation($i: ID!, $n: ID!) { transferStewardship(institutionId: $i, networkId: $n) { steward { key } stewardshipHistory { network { key } to changedBy } } }";
    assert_eq!(
        app.error_as(
            &wolves,
            transfer,
            json!({"i": "wolves-hospitals", "n": "wolverhampton"})
        )
        .await,
        "FORBIDDEN"
    );
    let d = app
        .query_as(
            &op,
            transfer,
            json!({"i": "wolves-hospitals", "n": "wolverhampton"}),
        )
        .await["transferStewardship"]
        .clone();
    assert_eq!(d["steward"]["key"], "wolverhampton");
    let h = d["stewardshipHistory"].as_array().unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0]["network"]["key"], "black-country");
    assert!(h[0]["to"].is_string());
    assert_eq!(h[1]["network"]["key"], "wolverhampton");
    assert!(h[1]["to"].is_null());
    // Now the Black Country membership is an ordinary one and may end.
    app.query_as(&bc, END, json!({"id": id, "to": "2025-03-31"}))
        .await;
    // Transferring to a network it is not in makes it a member there.
    app.query_as(
        &op,
        transfer,
        json!({"i": "wolves-hospitals", "n": "birmingham"}),
    )
    .await;
    assert_eq!(member_count(&app, "birmingham").await, 7);
    assert_eq!(
        app.error_as(
            &op,
            transfer,
            json!({"i": "wolves-hospitals", "n": "birmingham"})
        )
        .await,
        "CONFLICT"
    );
}

async fn admins_edit_their_own_network_and_stewarded_institutions(backend: Backend) {
    let app = spawn_app(backend).await;
    let sandwell = app.token(As::Admin("sandwell"), "").await;
    let upd = "mutation($id: ID!, $i: NetworkUpdate!) { updateNetwork(id: $id, input: $i) { population requiresApproval districts { code } } }";
    let d = app
        .query_as(
            &sandwell,
            upd,
            json!({"id": "sandwell", "i": {"population": 341000, "requiresApproval": true}}),
        )
        .await;
    assert_eq!(d["updateNetwork"]["population"], 341000);
    assert_eq!(d["updateNetwork"]["requiresApproval"], true);
    assert_eq!(
        app.error_as(
            &sandwell,
            upd,
            json!({"id": "black-country", "i": {"population": 1}})
        )
        .await,
        "FORBIDDEN"
    );
    let (_, body) = app
        .post_as(
            &sandwell,
            upd,
            json!({"id": "sandwell", "i": {"districts": ["E47000007"]}}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["field"], "input.districts",
        "{body}"
    );
    let (_, body) = app
        .post_as(
            &sandwell,
            upd,
            json!({"id": "sandwell", "i": {"population": -5}}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["field"], "input.population",
        "{body}"
    );

    let ui = "mutation($id: ID!, $i: InstitutionUpdate!) { updateInstitution(id: $id, input: $i) { name identifiers { scheme value } } }";
    let d = app
        .query_as(&sandwell, ui, json!({"id": "sandwell-college", "i": {"name": "Fictional Oldbury and Smethwick College", "identifiers": [{"scheme": "UKPRN", "value": "10099010"}]}}))
        .await;
    assert_eq!(
        d["updateInstitution"]["identifiers"],
        json!([{"scheme": "UKPRN", "value": "10099010"}])
    );
    // A member it does not steward is not its to edit.
    assert_eq!(
        app.error_as(
            &sandwell,
            ui,
            json!({"id": "sandwell-hospitals", "i": {"name": "X"}})
        )
        .await,
        "FORBIDDEN"
    );
    // Another institution's identifier is a conflict, and nothing is half-written.
    assert_eq!(
        app.error_as(&sandwell, ui, json!({"id": "sandwell-college", "i": {"name": "Renamed", "identifiers": [{"scheme": "ODS", "value": "ZZA01"}]}})).await,
        "CONFLICT"
    );
    let d = app
        .query(
            "{ institution(id: \"sandwell-college\") { name } }",
            json!({}),
        )
        .await;
    assert_eq!(
        d["institution"]["name"],
        "Fictional Oldbury and Smethwick College"
    );

    // A token narrowed to data verbs administers nothing.
    let narrowed = app.token(As::Admin("sandwell"), "read:impact").await;
    assert_eq!(
        app.error_as(
            &narrowed,
            upd,
            json!({"id": "sandwell", "i": {"population": 1}})
        )
        .await,
        "FORBIDDEN"
    );
}

async fn operators_build_the_directory(backend: Backend) {
    let app = spawn_app(backend).await;
    let op = app.token(As::Operator, "").await;
    let admin = app.token(As::Admin("sandwell"), "").await;

    let org = "mutation($i: OrganisationInput!) { createOrganisation(input: $i) { id key name } }";
    let d = app
        .query_as(
            &op,
            org,
            json!({"i": {"key": "uob-cles-research", "name": "A university research group"}}),
        )
        .await;
    assert_eq!(d["createOrganisation"]["key"], "uob-cles-research");
    assert_eq!(
        app.error_as(
            &op,
            org,
            json!({"i": {"key": "uob-cles-research", "name": "Again"}})
        )
        .await,
        "CONFLICT"
    );
    assert_eq!(
        app.error_as(&admin, org, json!({"i": {"key": "x-org", "name": "X"}}))
            .await,
        "FORBIDDEN"
    );
    let (_, body) = app
        .post_as(&op, org, json!({"i": {"key": "Not A Key", "name": "X"}}))
        .await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "input.key");
    assert_eq!(
        app.query("{ organisations { key } }", json!({})).await["organisations"],
        json!([{"key": "uob-cles-research"}])
    );

    let region = "mutation($i: RegionInput!) { createRegion(input: $i) { code name districts { code name } } }";
    let d = app
        .query_as(&op, region, json!({"i": {"code": "E47000001", "name": "Greater Manchester Combined Authority",
            "districts": [{"code": "E08000003", "name": "Manchester"}, {"code": "E08000007", "name": "Stockport"}]}}))
        .await;
    assert_eq!(d["createRegion"]["districts"].as_array().unwrap().len(), 2);
    assert_eq!(
        app.error_as(
            &admin,
            region,
            json!({"i": {"code": "E47000002", "name": "X", "districts": []}})
        )
        .await,
        "FORBIDDEN"
    );

    let net = "mutation($i: NetworkInput!) { createNetwork(input: $i) { key region { code } districts { code } members(first: 10) { totalCount } } }";
    let input = json!({"key": "manchester", "name": "Manchester Anchor Network", "region": "E47000001", "established": 2023,
                       "population": 550000, "districts": ["E08000003"]});
    let d = app.query_as(&op, net, json!({"i": input})).await;
    assert_eq!(d["createNetwork"]["region"]["code"], "E47000001");
    assert_eq!(
        app.error_as(&op, net, json!({"i": input})).await,
        "CONFLICT"
    );
    assert_eq!(
        app.error_as(&admin, net, json!({"i": input})).await,
        "FORBIDDEN"
    );
    let mut unknown = input.clone();
    unknown["key"] = json!("leeds");
    unknown["districts"] = json!(["E08000035"]);
    let (_, body) = app.post_as(&op, net, json!({"i": unknown})).await;
    assert_eq!(
        body["errors"][0]["extensions"]["field"], "input.districts",
        "{body}"
    );

    let inst = "mutation($i: InstitutionInput!) { createInstitution(input: $i) { key sector yearEndMonth steward { key } memberships { network { key } status } } }";
    let d = app
        .query_as(&op, inst, json!({"i": {"key": "mcr-university", "name": "Fictional Irwell University", "sector": "UNIVERSITY",
            "homeDistrict": "E08000003", "steward": "manchester", "identifiers": [{"scheme": "UKPRN", "value": "10099099"}]}}))
        .await;
    let i = &d["createInstitution"];
    assert_eq!(
        (i["yearEndMonth"].as_i64(), i["steward"]["key"].as_str()),
        (Some(7), Some("manchester"))
    );
    assert_eq!(
        i["memberships"],
        json!([{"network": {"key": "manchester"}, "status": "ACTIVE"}])
    );
    assert_eq!(member_count(&app, "manchester").await, 1);

    // A network admin creates institutions for its own network only.
    let mine = json!({"i": {"key": "sandwell-new-trust", "name": "Fictional Sandwell New Trust", "sector": "VCSE",
                            "homeDistrict": "E08000028", "steward": "sandwell"}});
    app.query_as(&admin, inst, mine).await;
    let theirs = json!({"i": {"key": "bc-new-trust", "name": "Fictional BC New Trust", "sector": "VCSE",
                              "homeDistrict": "E08000028", "steward": "black-country"}});
    assert_eq!(app.error_as(&admin, inst, theirs).await, "FORBIDDEN");
    // Bad input names its field and writes nothing.
    let bad = json!({"i": {"key": "bad-one", "name": "Fictional Bad", "sector": "VCSE", "homeDistrict": "E08000028",
                           "steward": "sandwell", "identifiers": [{"scheme": "ODS", "value": "!!"}]}});
    let (_, body) = app.post_as(&admin, inst, bad).await;
    assert_eq!(
        body["errors"][0]["extensions"]["field"], "input.identifiers[0].value",
        "{body}"
    );
    assert_eq!(
        app.query("{ institution(id: \"bad-one\") { key } }", json!({}))
            .await["institution"],
        Value::Null
    );
    assert_eq!(member_count(&app, "sandwell").await, 16);
}

both_databases!(
    invited_member_counts_only_once_the_steward_accepts,
    admins_cannot_touch_other_networks_memberships,
    steward_membership_cannot_end_until_stewardship_moves,
    admins_edit_their_own_network_and_stewarded_institutions,
    operators_build_the_directory,
);
