//! Unit tests of the configuration: defaults, validation rules with the
//! key each names, and that docs/CONFIG.md documents exactly the accepted keys.

use super::*;

const SECRET: &str = "0123456789abcdef";

fn valid() -> Config {
    Config { secret: SECRET.into(), ..Config::default() }
}

#[test]
fn sample_file_parses_and_validates() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../missive.toml")).expect("sample");
    let mut c = Config::from_toml(&text).expect("parses");
    c.secret = SECRET.into();
    c.validate().expect("valid");
}

#[test]
fn rejects_bad_values() {
    let mut c = valid();
    c.validate().expect("defaults valid");
    c.limits.ping_interval_secs = 500;
    assert!(c.validate().is_err());
    assert!(Config::from_toml("nope = 1").is_err());
    let short = Config { secret: "x".into(), ..Config::default() };
    assert!(short.validate().is_err());
}

/// The storage and admin keys of issue 14's disk work: each rule names its key.
#[test]
fn admin_token_and_dedup_retention_rules() {
    assert_eq!(violation(|c| c.admin.token = Some("short".into())).key, "admin.token");
    assert_eq!(violation(|c| c.admin.token = Some("has a space in it!!".into())).key, "admin.token");
    assert_eq!(violation(|c| c.storage.dedup_retention_days = 36_501).key, "storage.dedup_retention_days");
    let mut c = valid();
    c.admin.token = Some("0123456789abcdef".into());
    c.storage.dedup_retention_days = 0;
    c.validate().expect("a 16-byte token and retention 0 (forever) are valid");
}

/// `storage.max_wal_mb`: at least one write buffer, at most 1 TiB.
#[test]
fn max_wal_rules() {
    assert_eq!(valid().storage.max_wal_mb, 256);
    assert_eq!(violation(|c| c.storage.max_wal_mb = 31).key, "storage.max_wal_mb");
    assert_eq!(violation(|c| c.storage.max_wal_mb = MAX_WAL_MB + 1).key, "storage.max_wal_mb");
    let mut c = valid();
    c.storage.write_buffer_mb = 4;
    c.storage.max_wal_mb = 4;
    c.validate().expect("a bound of one write buffer is valid");
}

/// The key a violation names, after applying `change` to a valid config.
fn violation(change: impl FnOnce(&mut Config)) -> ConfigError {
    let mut c = valid();
    change(&mut c);
    c.check().expect_err("the change must be refused")
}

#[test]
fn every_documented_cross_constraint_is_enforced() {
    // docs/CONFIG.md "Cross-constraints": each row, just over its bound.
    let e = violation(|c| c.secret = "x".repeat(15));
    assert_eq!(e.key, "secret");
    assert!(!e.to_string().contains(&"x".repeat(15)), "the secret is never printed: {e}");
    valid_after(|c| c.secret = "x".repeat(16));

    let e = violation(|c| {
        c.limits.max_frame_size = 65_536;
        c.limits.max_content_bytes = 65_536 - 1023;
    });
    assert_eq!(e.key, "limits.max_content_bytes", "{e}");
    valid_after(|c| {
        c.limits.max_frame_size = 65_536;
        c.limits.max_content_bytes = 65_536 - 1024;
    });

    let e = violation(|c| c.limits.write_queue_bytes = c.limits.max_frame_size as usize - 1);
    assert_eq!(e.key, "limits.write_queue_bytes", "{e}");
    valid_after(|c| c.limits.write_queue_bytes = c.limits.max_frame_size as usize);

    // Profile: name + url + 2 * text + ex + 1024 <= max_frame_size / 8.
    let fits = |c: &mut Config| {
        c.limits.max_frame_size = 65_536;
        c.limits.max_content_bytes = 1024;
        c.relations.max_ex_bytes = 65_536 / 8
            - 1024
            - c.relations.max_name_bytes
            - c.relations.max_url_bytes
            - 2 * c.relations.max_text_bytes;
    };
    valid_after(fits);
    let e = violation(|c| {
        fits(c);
        c.relations.max_ex_bytes += 1;
    });
    assert_eq!(e.key, "relations.max_ex_bytes", "{e}");

    let e = violation(|c| c.limits.ping_interval_secs = c.limits.idle_timeout_secs);
    assert_eq!(e.key, "limits.ping_interval_secs", "{e}");
    let e = violation(|c| c.limits.sync_page_default = c.limits.sync_page_max + 1);
    assert_eq!(e.key, "limits.sync_page_default", "{e}");
    let e = violation(|c| c.limits.pull_page_default = c.limits.pull_page_max + 1);
    assert_eq!(e.key, "limits.pull_page_default", "{e}");
    let e = violation(|c| c.relations.page_default = c.relations.page_max + 1);
    assert_eq!(e.key, "relations.page_default", "{e}");
    let e = violation(|c| c.web.tls_cert = Some("cert.pem".into()));
    assert_eq!(e.key, "web.tls_key", "{e}");
    for bad in ["chat.example.com", "https://chat.example.com/", "https://", "ftp://x"] {
        let e = violation(|c| c.web.allowed_origins = vec![bad.to_owned()]);
        assert_eq!(e.key, "web.allowed_origins", "{bad}: {e}");
    }
    valid_after(|c| {
        c.web.allowed_origins = vec!["https://chat.example.com".into(), "http://[::1]:8080".into()];
    });
    let e = violation(|c| c.limits.max_frame_size = MIN_FRAME_SIZE - 1);
    assert_eq!(e.key, "limits.max_frame_size", "{e}");
    let e = violation(|c| c.storage.write_buffer_mb = 257);
    assert_eq!(e.key, "storage.max_wal_mb", "{e}");
    valid_after(|c| c.storage.write_buffer_mb = 256);
}

fn valid_after(change: impl FnOnce(&mut Config)) {
    let mut c = valid();
    change(&mut c);
    if let Err(e) = c.check() {
        panic!("a value at the bound must be accepted: {e}");
    }
}

#[test]
fn errors_are_one_line_naming_key_rule_and_fix() {
    let mut errors = vec![
        violation(|c| c.secret.clear()),
        violation(|c| c.limits.max_content_bytes = 10 << 20),
        violation(|c| c.web.webtransport_url = Some("http://x".into())),
    ];
    for text in ["nope = 1", "[limits]\nmax_frame_size = \"big\"\n", "[limits]\nmax_frame = 1\n", "[nope]\n"]
    {
        errors.push(Config::parse_toml(text).expect_err(text));
    }
    for e in errors {
        let line = e.to_string();
        assert!(!line.contains('\n'), "one line: {line:?}");
        assert!(!e.key.is_empty() && !e.rule.is_empty() && !e.fix.is_empty(), "{e:?}");
        assert!(line.contains("; fix: "), "{line}");
    }
    let e = Config::parse_toml("[limits]\nmax_frame = 1\n").expect_err("unknown key");
    assert!(e.key.starts_with("limits.max_frame (line 2"), "{e}");
    let e = Config::parse_toml("[limits]\nmax_frame_size = \"big\"\n").expect_err("bad type");
    assert!(e.key.starts_with("limits.max_frame_size (line 2"), "{e}");
}

#[test]
fn effective_toml_shows_every_key_and_hides_the_secret() {
    let mut c = valid();
    c.secret = "a-secret-nobody-may-see".into();
    c.ws = Some(SocketAddr::from(([127, 0, 0, 1], 7780)));
    let text = c.effective_toml();
    assert!(!text.contains("a-secret-nobody-may-see"), "{text}");
    assert!(text.contains("redacted: 23 bytes"), "{text}");
    assert!(
        text.contains("# unset (off): admin.token, quic, storage.backup_dir, tcp_tls, translate.api_key, translate.url, web.static_dir"),
        "{text}"
    );
    let mut with_admin = c.clone();
    with_admin.admin.token = Some("an-admin-token-nobody-may-see".into());
    let shown = with_admin.effective_toml();
    assert!(!shown.contains("an-admin-token-nobody-may-see"), "{shown}");
    assert!(shown.contains("redacted: 29 bytes"), "{shown}");
    let mut back = Config::parse_toml(&text).expect("the printed configuration parses");
    back.secret = c.secret.clone();
    assert_eq!(format!("{back:?}"), format!("{c:?}"));
}

/// Every key the structs accept, dotted, with its default as JSON.
fn accepted_keys() -> std::collections::BTreeMap<String, serde_json::Value> {
    let mut keys = std::collections::BTreeMap::new();
    let v = serde_json::to_value(Config::default()).expect("serialize");
    walk_keys(&v, "", &mut |k, v| {
        keys.insert(k.to_owned(), v.clone());
    });
    keys
}

/// Rows of docs/CONFIG.md's key tables: (key, default cell).
fn documented_keys() -> Vec<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/CONFIG.md");
    let doc = std::fs::read_to_string(path).expect("docs/CONFIG.md");
    let mut rows = Vec::new();
    let mut in_keys = false;
    for line in doc.lines() {
        if line.starts_with("## ") {
            in_keys = line.starts_with("## Keys");
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // `| `key` | default | unit | cost | rules |`
        if in_keys
            && cells.len() >= 6
            && let Some(key) = cells[1].strip_prefix('`').and_then(|k| k.strip_suffix('`'))
        {
            rows.push((key.to_owned(), cells[2].to_owned()));
        }
    }
    rows
}

#[test]
fn config_reference_documents_exactly_the_accepted_keys() {
    let accepted = accepted_keys();
    let documented = documented_keys();
    assert!(
        accepted.len() > 40 && documented.len() > 40,
        "parsers found {} / {}",
        accepted.len(),
        documented.len()
    );
    let doc_keys: std::collections::BTreeSet<&str> = documented.iter().map(|(k, _)| k.as_str()).collect();
    let undocumented: Vec<&String> = accepted.keys().filter(|k| !doc_keys.contains(k.as_str())).collect();
    assert!(undocumented.is_empty(), "keys missing from docs/CONFIG.md: {undocumented:?}");
    let unknown: Vec<&&str> = doc_keys.iter().filter(|k| !accepted.contains_key(**k)).collect();
    assert!(unknown.is_empty(), "docs/CONFIG.md documents keys the broker refuses: {unknown:?}");
    assert_eq!(doc_keys.len(), documented.len(), "a key is documented twice");
    // Each documented default is the real one: the first code span of the
    // default cell is the TOML value, or the cell starts with "unset".
    for (key, cell) in &documented {
        let real = &accepted[key];
        if real.is_null() {
            assert!(cell.starts_with("unset"), "{key}: default is unset, docs say {cell:?}");
            continue;
        }
        let shown = cell.split('`').nth(1).unwrap_or_else(|| panic!("{key}: no `value` in {cell:?}"));
        assert_eq!(shown, real.to_string(), "{key}: docs/CONFIG.md default differs from Config::default()");
    }
    // And every documented key parses in its section with that default.
    for (key, cell) in &documented {
        let Some(value) = cell.split('`').nth(1) else { continue };
        let toml = match key.rsplit_once('.') {
            Some((section, k)) => format!("[{section}]\n{k} = {value}\n"),
            None => format!("{key} = {value}\n"),
        };
        if let Err(e) = Config::parse_toml(&toml) {
            panic!("documented key {key} is refused: {e}");
        }
    }
}
