//! `[events.elasticsearch]`: where the sink sends documents, how it batches and retries, and
//! where it keeps what it could not send yet.

use std::path::PathBuf;

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Deserializer, Serialize};

use crate::config::{Invalid, Live, Section};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// Index every event document into Elasticsearch/OpenSearch with _bulk, _id = tracer_id (a
/// replayed document never becomes a second one). 429/5xx items are retried with backoff, other
/// refused items go to dead_letter_file; while the cluster is unreachable documents wait in a
/// bounded disk spool, replayed in order when it is back (also after an agent restart).
/// Environment: HUATUO_EVENTS__ELASTICSEARCH__<KEY>.
pub struct ElasticsearchConfig {
    /// Send every event document to Elasticsearch/OpenSearch with `_bulk`.
    pub enabled: bool,
    /// Base URLs of the cluster (`http://` or `https://`); a failed request moves to the next.
    /// One string with commas also works (`HUATUO_EVENTS__ELASTICSEARCH__ADDRESSES=a,b`).
    #[serde(alias = "address", deserialize_with = "one_or_many")]
    pub addresses: Vec<String>,
    /// Index the documents go to.
    pub index: String,
    /// Basic authentication; "" sends none.
    pub username: String,
    /// Password of `username` (masked in `check-config`).
    pub password: String,
    /// PEM file of CA certificates trusted besides the system store; empty = system store only.
    pub ca_file: PathBuf,
    /// Accept any server certificate (tests, self-signed clusters). Not for production.
    pub insecure_skip_verify: bool,
    /// Most documents in one `_bulk` request.
    pub batch_size: usize,
    /// Longest a document waits in memory before its batch is sent.
    pub flush_interval_ms: u64,
    /// Timeout of one `_bulk` request (connect included).
    pub request_timeout_ms: u64,
    /// Directory of the on-disk spool: documents waiting while the cluster is unreachable,
    /// replayed in order when it is back (also after an agent restart).
    pub spool_dir: PathBuf,
    /// Cap on the spool in MiB; past it new documents are dropped and counted.
    pub spool_max_mib: u64,
    /// NDJSON file of documents the cluster refused (4xx other than 429), one line each with the
    /// error.
    pub dead_letter_file: PathBuf,
    /// First delay before a failed request (or the 429/5xx items of a bulk) is retried; doubles
    /// on each further failure up to `retry_backoff_max_ms`.
    pub retry_backoff_initial_ms: u64,
    pub retry_backoff_max_ms: u64,
}

impl Default for ElasticsearchConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            addresses: vec!["http://127.0.0.1:9200".to_string()],
            index: "huatuo_bamai".to_string(),
            username: String::new(),
            password: String::new(),
            ca_file: PathBuf::new(),
            insecure_skip_verify: false,
            batch_size: 500,
            flush_interval_ms: 1000,
            request_timeout_ms: 10_000,
            spool_dir: PathBuf::from("/var/lib/huatuo/es-spool"),
            spool_max_mib: 256,
            dead_letter_file: PathBuf::from("/var/lib/huatuo/es-dead-letter.ndjson"),
            retry_backoff_initial_ms: 500,
            retry_backoff_max_ms: 30_000,
        }
    }
}

impl Section for ElasticsearchConfig {
    const PATH: &'static str = "events.elasticsearch";
    const LIVE: Live = Live::RestartAgent;

    fn validate(&self) -> Result<(), Invalid> {
        self.check()
            .map_err(|(field, reason)| Invalid::field(field, reason))
    }
}

/// Most documents in one request: bulk bodies beyond this get slow and hit `http.max_content_length`.
pub const MAX_BATCH_SIZE: usize = 10_000;

impl ElasticsearchConfig {
    /// Checks the section; the error names the key (below `events.elasticsearch.`) and why.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.enabled && self.addresses.is_empty() {
            return Err((
                "addresses",
                "must list at least one URL when enabled".into(),
            ));
        }
        for address in &self.addresses {
            check_address(address).map_err(|reason| ("addresses", reason))?;
        }
        check_index(&self.index).map_err(|reason| ("index", reason))?;
        if self.username.is_empty() && !self.password.is_empty() {
            return Err(("password", "is set but `username` is empty".into()));
        }
        if self.batch_size == 0 || self.batch_size > MAX_BATCH_SIZE {
            return Err((
                "batch_size",
                format!("must be 1 to {MAX_BATCH_SIZE} (got {})", self.batch_size),
            ));
        }
        if self.flush_interval_ms < 10 {
            return Err(("flush_interval_ms", "must be at least 10".into()));
        }
        if self.request_timeout_ms < 100 {
            return Err(("request_timeout_ms", "must be at least 100".into()));
        }
        if self.spool_dir.as_os_str().is_empty() {
            return Err(("spool_dir", "must not be empty".into()));
        }
        if self.spool_max_mib == 0 {
            return Err(("spool_max_mib", "must be at least 1".into()));
        }
        if self.dead_letter_file.as_os_str().is_empty() {
            return Err(("dead_letter_file", "must not be empty".into()));
        }
        if self.retry_backoff_initial_ms == 0 {
            return Err(("retry_backoff_initial_ms", "must be > 0".into()));
        }
        if self.retry_backoff_max_ms < self.retry_backoff_initial_ms {
            return Err((
                "retry_backoff_max_ms",
                "must be >= retry_backoff_initial_ms".into(),
            ));
        }
        Ok(())
    }

    pub fn spool_max_bytes(&self) -> u64 {
        self.spool_max_mib.saturating_mul(1024 * 1024)
    }
}

fn check_address(address: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(address)
        .map_err(|e| format!("`{address}` is not a URL like http://127.0.0.1:9200: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "`{address}`: only http:// and https:// are supported"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{address}` has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{address}`: no query or fragment, only the base URL"
        ));
    }
    Ok(())
}

/// Elasticsearch's index name rules: lowercase, no `\ / * ? " < > | , # :` or spaces, not
/// starting with `-`, `_` or `+`, not `.` or `..`, at most 255 bytes.
fn check_index(index: &str) -> Result<(), String> {
    if index.is_empty() {
        return Err("must not be empty".into());
    }
    if index.len() > 255 {
        return Err("must be at most 255 bytes".into());
    }
    if index == "." || index == ".." || index.starts_with(['-', '_', '+']) {
        return Err(format!("`{index}` is not a valid index name"));
    }
    let bad = |c: char| c.is_uppercase() || c.is_whitespace() || "\\/*?\"<>|,#:".contains(c);
    if let Some(c) = index.chars().find(|c| bad(*c)) {
        return Err(format!(
            "`{index}`: index names are lowercase without spaces or any of \\ / * ? \" < > | , # : (found {c:?})"
        ));
    }
    Ok(())
}

/// A list, or one string of comma-separated items (what an environment variable carries).
fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        OneOrMany::Many(list) => list.into_iter().map(|s| s.trim().to_string()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_disabled() {
        let config = ElasticsearchConfig::default();
        assert!(!config.enabled);
        config.check().unwrap();
    }

    #[test]
    fn addresses_take_a_list_or_a_comma_separated_string() {
        let many: ElasticsearchConfig =
            toml::from_str("addresses = [\"http://a:9200\", \"https://b:9200\"]").unwrap();
        assert_eq!(many.addresses, ["http://a:9200", "https://b:9200"]);
        let one: ElasticsearchConfig =
            toml::from_str("address = \"http://a:9200, http://b:9200\"").unwrap();
        assert_eq!(one.addresses, ["http://a:9200", "http://b:9200"]);
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error.
    fn environment_overrides_reach_the_nested_section() {
        use crate::config::{ConfigSource, FlagOverrides, SectionSpec};
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "agent.toml",
                "[events.elasticsearch]\nindex = \"from_file\"\n",
            )?;
            jail.set_env("HUATUO_EVENTS__ELASTICSEARCH__ENABLED", "true");
            jail.set_env(
                "HUATUO_EVENTS__ELASTICSEARCH__ADDRESSES",
                "http://a:9200,https://b:9200",
            );
            jail.set_env("HUATUO_EVENTS__ELASTICSEARCH__BATCH_SIZE", "50");
            let source = ConfigSource {
                path: "agent.toml".into(),
                explicit: true,
                flags: FlagOverrides::default(),
                sections: vec![
                    SectionSpec::of::<crate::events::store::EventsConfig>(),
                    SectionSpec::of::<ElasticsearchConfig>(),
                ]
                .into(),
            };
            let config = source.load().unwrap().section::<ElasticsearchConfig>();
            assert!(config.enabled);
            assert_eq!(config.addresses, ["http://a:9200", "https://b:9200"]);
            assert_eq!(config.batch_size, 50);
            assert_eq!(config.index, "from_file");
            jail.set_env("HUATUO_EVENTS__ELASTICSEARCH__SPOOL_MAX_MIB", "0");
            let err = source.load().unwrap_err().to_string();
            assert!(err.contains("events.elasticsearch.spool_max_mib"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_their_key() {
        let check = |edit: fn(&mut ElasticsearchConfig), key: &str| {
            let mut config = ElasticsearchConfig::default();
            edit(&mut config);
            let (bad, reason) = config.check().unwrap_err();
            assert_eq!(bad, key, "{reason}");
        };
        check(|c| c.addresses = vec!["127.0.0.1:9200".into()], "addresses");
        check(|c| c.addresses = vec!["ftp://x".into()], "addresses");
        check(
            |c| {
                c.enabled = true;
                c.addresses.clear()
            },
            "addresses",
        );
        check(|c| c.index = "Huatuo".into(), "index");
        check(|c| c.index = "_x".into(), "index");
        check(|c| c.password = "secret".into(), "password");
        check(|c| c.batch_size = 0, "batch_size");
        check(|c| c.spool_max_mib = 0, "spool_max_mib");
        check(|c| c.retry_backoff_max_ms = 1, "retry_backoff_max_ms");
    }
}
