//! Paged lists of the admin API: a group's members, a user's groups, every
//! group; each page ascending by id, cursors opaque, bad cursors and limits 400.

use missive_tests::api::Api;
use missive_tests::*;
use serde_json::{Value, json};

use super::{code, create, import, start};

/// Every item of a paged list at `path` (`?` or `&` added), `limit` per page;
/// checks that each page holds at most `limit` items.
fn walk(api: &Api, path: &str, limit: usize) -> (Vec<Value>, usize) {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut cursor = String::new();
    let mut items = Vec::new();
    let mut pages = 0;
    loop {
        let page = api.get(&format!("{path}{sep}limit={limit}&cursor={cursor}")).ok();
        pages += 1;
        let got = page["items"].as_array().expect("items").clone();
        assert!(got.len() <= limit, "page over the limit: {page}");
        items.extend(got);
        cursor = page["next_cursor"].as_str().expect("next_cursor").to_owned();
        if cursor.is_empty() {
            return (items, pages);
        }
        assert!(pages < 100, "paging does not end");
    }
}

fn ids(items: &[Value], field: &str) -> Vec<String> {
    items.iter().map(|v| v[field].as_str().expect("id").to_owned()).collect()
}

#[test]
fn members_are_paged_in_user_order_with_their_roles() {
    let (b, api) = start();
    let users: Vec<String> = (0..25).map(|i| format!("u{i:02}")).collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    import(&b, &refs);
    import(&b, &["owner"]);
    create(&api, "big", "owner", &refs, json!({}));
    api.put("/v1/groups/big/members/u03/role", &json!({ "role": "admin" })).ok();
    let (items, pages) = walk(&api, "/v1/groups/big/members", 10);
    assert_eq!(pages, 3);
    let got = ids(&items, "user_id");
    let mut want: Vec<String> = users.clone();
    want.push("owner".into());
    want.sort();
    assert_eq!(got, want);
    let role = |u: &str| items.iter().find(|m| m["user_id"] == u).map(|m| m["role"].clone());
    assert_eq!(role("owner"), Some(json!("owner")));
    assert_eq!(role("u03"), Some(json!("admin")));
    assert_eq!(role("u04"), Some(json!("member")));
    let first = &items[0];
    assert_eq!(first["group_id"], "big");
    assert_eq!(first["notify"], "notify");
    assert!(first["join_seq"].as_u64().is_some_and(|s| s >= 1));
    let page = api.get("/v1/groups/big/members?limit=1").ok();
    assert_eq!(page["member_count"], 26);
    // Exactly one page: no cursor.
    assert_eq!(api.get("/v1/groups/big/members?limit=26").ok()["next_cursor"], "");
    for q in ["limit=0", "limit=1001", "limit=x", "cursor=%21%21", "cursor=YSBi", "other=1"] {
        api.get(&format!("/v1/groups/big/members?{q}")).refused(400, code(ErrorCode::InvalidArgument));
    }
    api.get("/v1/groups/nope/members").refused(404, code(ErrorCode::GroupNotFound));
    api.get("/v1/groups/bad%20id/members").refused(400, code(ErrorCode::InvalidArgument));
}

#[test]
fn groups_of_a_user_and_every_group_are_paged_in_id_order() {
    let (b, api) = start();
    import(&b, &["o", "m", "loner"]);
    let names = ["g-a", "g-b", "g-c", "g-d", "g-e"];
    for g in names {
        create(&api, g, "o", &["m"], json!({}));
    }
    create(&api, "solo", "loner", &[], json!({}));
    let (items, pages) = walk(&api, "/v1/users/m/groups", 2);
    assert_eq!(pages, 3);
    assert_eq!(ids(&items, "group_id"), names);
    assert_eq!(items[0]["owner_id"], "o");
    // Removed from one: it leaves the user's list.
    api.post("/v1/groups/g-c/members/remove", &json!({ "user_ids": ["m"] })).ok();
    let (items, _) = walk(&api, "/v1/users/m/groups", 100);
    assert_eq!(ids(&items, "group_id"), ["g-a", "g-b", "g-d", "g-e"]);
    let (items, _) = walk(&api, "/v1/users/loner/groups", 10);
    assert_eq!(ids(&items, "group_id"), ["solo"]);
    api.get("/v1/users/nobody/groups").refused(404, code(ErrorCode::UserNotFound));
    api.get("/v1/users/bad%20id/groups").refused(400, code(ErrorCode::InvalidArgument));
    for q in ["limit=0", "limit=1001", "cursor=%21%21", "cursor=YSBi"] {
        api.get(&format!("/v1/users/m/groups?{q}")).refused(400, code(ErrorCode::InvalidArgument));
    }
    // Every group, dismissed ones included (marked).
    api.delete("/v1/groups/g-b");
    let (items, pages) = walk(&api, "/v1/groups", 2);
    assert_eq!(pages, 3);
    assert_eq!(ids(&items, "group_id"), ["g-a", "g-b", "g-c", "g-d", "g-e", "solo"]);
    assert_eq!(items[1]["dismissed"], true);
    assert_eq!(items[5]["member_count"], 1);
    let (items, _) = walk(&api, "/v1/groups", 1000);
    assert_eq!(items.len(), 6);
    for q in ["limit=0", "limit=1001", "cursor=%21%21", "cursor=YSBi", "x=1"] {
        api.get(&format!("/v1/groups?{q}")).refused(400, code(ErrorCode::InvalidArgument));
    }
}
