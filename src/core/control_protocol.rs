//! Control-socket protocol: one request per line, one JSON reply per line. A request is JSON
//! (`{"command":"set","key":"probes.softirq.interval_ms","value":"2000"}`) or plain words
//! (`set probes.softirq.interval_ms 2000`), so `socat` works as well as `huatuo-bamai ctl`.

use serde::{Deserialize, Serialize};

/// Longest request line accepted; longer lines get an error and the connection is closed.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    Status,
    Enable {
        name: String,
    },
    Disable {
        name: String,
    },
    Set {
        key: String,
        value: String,
    },
    Reload,
    /// Fault injection: kill an actor as if it crashed (the supervisor restarts it).
    Kill {
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    pub fn ok(result: serde_json::Value) -> Self {
        Self {
            ok: true,
            result: Some(result),
            error: None,
        }
    }
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            result: None,
            error: Some(message.into()),
        }
    }
}

const USAGE: &str =
    "commands: status | enable NAME | disable NAME | set KEY VALUE | reload | kill NAME";

/// Parses one request line (JSON object or words).
pub fn parse_request(line: &str) -> Result<Request, String> {
    let line = line.trim();
    if line.is_empty() {
        return Err(format!("empty request; {USAGE}"));
    }
    if line.starts_with('{') {
        return serde_json::from_str(line)
            .map_err(|e| format!("malformed JSON request: {e}; {USAGE}"));
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let arity = |n: usize, form: &str| -> Result<(), String> {
        if words.len() == n {
            Ok(())
        } else {
            Err(format!("`{}` takes {form}", words[0]))
        }
    };
    match words[0] {
        "status" => arity(1, "no arguments").map(|_| Request::Status),
        "reload" => arity(1, "no arguments").map(|_| Request::Reload),
        "enable" => arity(2, "NAME").map(|_| Request::Enable {
            name: words[1].to_string(),
        }),
        "disable" => arity(2, "NAME").map(|_| Request::Disable {
            name: words[1].to_string(),
        }),
        "kill" => arity(2, "NAME").map(|_| Request::Kill {
            name: words[1].to_string(),
        }),
        "set" => {
            if words.len() < 3 {
                return Err("`set` takes KEY VALUE".to_string());
            }
            // The value is the rest of the line, so strings with spaces survive.
            let rest = line["set".len()..].trim_start();
            let value = rest[words[1].len()..].trim().to_string();
            Ok(Request::Set {
                key: words[1].to_string(),
                value,
            })
        }
        other => Err(format!("unknown command `{other}`; {USAGE}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_words_and_json_alike() {
        assert_eq!(parse_request("status"), Ok(Request::Status));
        assert_eq!(
            parse_request(r#"{"command":"status"}"#),
            Ok(Request::Status)
        );
        assert_eq!(
            parse_request("disable softirq"),
            Ok(Request::Disable {
                name: "softirq".into()
            })
        );
        assert_eq!(
            parse_request(r#"{"command":"enable","name":"runqlat"}"#),
            Ok(Request::Enable {
                name: "runqlat".into()
            })
        );
        assert_eq!(
            parse_request("set agent.log_level  huatuo_bamai=debug, info"),
            Ok(Request::Set {
                key: "agent.log_level".into(),
                value: "huatuo_bamai=debug, info".into()
            })
        );
    }

    #[test]
    fn garbage_is_an_error_naming_the_problem() {
        assert!(parse_request("").unwrap_err().contains("empty request"));
        assert!(parse_request("frobnicate")
            .unwrap_err()
            .contains("unknown command `frobnicate`"));
        assert!(parse_request("enable")
            .unwrap_err()
            .contains("`enable` takes NAME"));
        assert!(parse_request("set onlykey")
            .unwrap_err()
            .contains("KEY VALUE"));
        assert!(parse_request("{not json")
            .unwrap_err()
            .contains("malformed JSON"));
        assert!(parse_request(r#"{"command":"explode"}"#)
            .unwrap_err()
            .contains("malformed JSON"));
        assert!(parse_request("\u{0}\u{1}binary")
            .unwrap_err()
            .contains("unknown command"));
    }
}
