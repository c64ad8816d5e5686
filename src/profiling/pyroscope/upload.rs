//! One window becomes uploads: one per container (host processes together), each a pprof with
//! that container's samples and Pyroscope's `/ingest` query (name with labels, from, until,
//! format, sampleRate, spyName).
//!
//! Why split by container rather than label samples: Pyroscope turns pprof sample labels into
//! series labels, so the container is a series label either way; splitting keeps the name
//! readable (`huatuo-bamai.cpu{host=…,container=web,pod=web-0}`) and lets host-only dashboards
//! filter with plain label matchers. `pid` is left out of pushed pprofs (a series per process);
//! `comm` stays as a sample label.

use std::collections::BTreeMap;

use super::config::PyroscopeConfig;
use crate::profiling::pprof::{self, EncodeOptions};
use crate::profiling::{Profile, SampleLabels};

pub const SPY_NAME: &str = "huatuo-bamai";

/// Sample labels of pushed pprofs.
pub const PUSH_LABELS: EncodeOptions = EncodeOptions {
    pid: false,
    comm: true,
    container: false,
};

/// One `/ingest` request: query parameters and the gzip'd pprof.
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    /// `<app>.<kind>{label=value,…}` (unencoded).
    pub name: String,
    /// Unix seconds.
    pub from: u64,
    pub until: u64,
    /// On-CPU sampling frequency; `None` for off-CPU.
    pub sample_rate: Option<u32>,
    pub pprof: Vec<u8>,
}

impl Upload {
    /// The query string of `/ingest` (percent-encoded).
    pub fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = vec![
            ("name", self.name.clone()),
            ("from", self.from.to_string()),
            ("until", self.until.to_string()),
            ("format", "pprof".to_string()),
            ("spyName", SPY_NAME.to_string()),
        ];
        if let Some(rate) = self.sample_rate {
            query.push(("sampleRate", rate.to_string()));
        }
        query
    }
}

/// Label values Pyroscope's name parser accepts: no `{ } , =` or quotes, no whitespace.
fn label_value(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if "{},=\"".contains(c) || c.is_whitespace() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Container labels of a sample: `container` (name, else the id's first 12 characters) and
/// `pod`; empty for host processes.
fn container_labels(labels: &SampleLabels) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let container = labels
        .container_name
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| {
            labels
                .container_id
                .as_ref()
                .map(|id| id.chars().take(12).collect())
        });
    if let Some(container) = container {
        out.push(("container", container));
    }
    if let Some(pod) = labels.pod.clone().filter(|p| !p.is_empty()) {
        out.push(("pod", pod));
    }
    out
}

/// The uploads of one window, host processes first, then containers by name.
pub fn uploads(profile: &Profile, config: &PyroscopeConfig) -> Vec<Upload> {
    let mut groups: BTreeMap<Vec<(&'static str, String)>, Profile> = BTreeMap::new();
    for sample in &profile.samples {
        let key = container_labels(&sample.labels);
        groups
            .entry(key)
            .or_insert_with(|| Profile {
                kind: profile.kind,
                start_unix_ns: profile.start_unix_ns,
                duration_ns: profile.duration_ns,
                frequency_hz: profile.frequency_hz,
                host: profile.host.clone(),
                samples: Vec::new(),
            })
            .samples
            .push(sample.clone());
    }
    let from = profile.start_unix_ns / 1_000_000_000;
    let until = (profile.start_unix_ns + profile.duration_ns).div_ceil(1_000_000_000);
    groups
        .into_iter()
        .map(|(container, part)| {
            let mut labels: Vec<(String, String)> = vec![("host".into(), profile.host.clone())];
            labels.extend(container.into_iter().map(|(k, v)| (k.to_string(), v)));
            labels.extend(config.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}={}", label_value(v)))
                .collect();
            Upload {
                name: format!(
                    "{}.{}{{{}}}",
                    config.application_name,
                    profile.kind.as_str(),
                    labels.join(",")
                ),
                from,
                until: until.max(from + 1),
                sample_rate: (profile.frequency_hz > 0).then_some(profile.frequency_hz),
                pprof: pprof::encode_with(&part, &PUSH_LABELS),
            }
        })
        .collect()
}

/// A multipart/form-data body with the pprof as the file field `profile` (what Pyroscope's
/// `/ingest` reads for `format=pprof`), and its Content-Type.
pub fn multipart(pprof: &[u8]) -> (Vec<u8>, String) {
    // A boundary that does not occur in the data (gzip bytes are arbitrary).
    let mut n: u64 = 0x6875_6174_756f;
    let boundary = loop {
        let candidate = format!("huatuo-bamai-{n:016x}");
        if !pprof
            .windows(candidate.len())
            .any(|w| w == candidate.as_bytes())
        {
            break candidate;
        }
        n = n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    };
    let mut body = Vec::with_capacity(pprof.len() + 256);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"profile\"; filename=\"profile.pprof\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(pprof);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (body, format!("multipart/form-data; boundary={boundary}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiling::{Frame, ProfileKind, StackSample};

    fn sample(container: Option<&str>, comm: &str) -> StackSample {
        StackSample {
            frames: vec![Frame {
                function: "f".into(),
                module: None,
                kernel: false,
                address: 1,
            }],
            labels: SampleLabels {
                pid: 1,
                comm: comm.into(),
                container_id: container.map(|c| format!("{c}-0123456789abcdef")),
                container_name: container.map(str::to_string),
                pod: container.map(|c| format!("{c} pod")),
            },
            count: 1,
            value_ns: 10,
        }
    }

    #[test]
    fn one_upload_per_container_with_labels_in_the_name() {
        let profile = Profile {
            kind: ProfileKind::Cpu,
            start_unix_ns: 10_500_000_000,
            duration_ns: 10_000_000_000,
            frequency_hz: 19,
            host: "node-1".into(),
            samples: vec![
                sample(Some("web"), "a"),
                sample(None, "b"),
                sample(Some("web"), "c"),
            ],
        };
        let mut config = PyroscopeConfig::default();
        config.labels.insert("env".into(), "prod".into());
        let uploads = uploads(&profile, &config);
        let names: Vec<&str> = uploads.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "huatuo-bamai.cpu{host=node-1,env=prod}",
                "huatuo-bamai.cpu{host=node-1,container=web,pod=web_pod,env=prod}",
            ]
        );
        assert_eq!((uploads[0].from, uploads[0].until), (10, 21));
        assert_eq!(uploads[1].sample_rate, Some(19));
    }

    #[test]
    fn the_boundary_is_not_in_the_data() {
        let (body, content_type) = multipart(b"huatuo-bamai-00006875617475");
        let boundary = content_type.split("boundary=").nth(1).expect("boundary");
        assert!(body.ends_with(format!("--{boundary}--\r\n").as_bytes()));
        assert_eq!(
            String::from_utf8_lossy(&body).matches(boundary).count(),
            2,
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
}
