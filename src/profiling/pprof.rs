//! pprof encoding: a [`Profile`] window as gzip'd `profile.proto`, readable by `go tool pprof`,
//! Pyroscope, Parca and Grafana.
//!
//! Sample types: on-CPU `samples/count` and `cpu/nanoseconds` (the default), period
//! `cpu/nanoseconds` = 1e9 / frequency; off-CPU `offcpu/nanoseconds`. One Mapping per module,
//! one Function per (name, module), one Location per (module, address, function). Every id is
//! its 1-based position: Pyroscope silently drops profiles whose ids are 0-based
//! (pyroscope#4807), and 0 means "none" in the format.

use std::collections::HashMap;
use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use prost::Message;

use super::proto::profile as pb;
use super::{Frame, Profile, ProfileKind, StackSample};

/// Which task labels each sample carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    /// `pid` (numeric label).
    pub pid: bool,
    /// `comm`.
    pub comm: bool,
    /// `container_id`, `container_name`, `pod` (when the task was in a known container).
    pub container: bool,
}

impl EncodeOptions {
    /// Every label: files, `GET /v1/profile?format=pprof`.
    pub const ALL: EncodeOptions = EncodeOptions {
        pid: true,
        comm: true,
        container: true,
    };
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self::ALL
    }
}

/// (type, unit) of each sample value, in the order of `Sample.value`.
pub fn sample_types(kind: ProfileKind) -> &'static [(&'static str, &'static str)] {
    match kind {
        ProfileKind::Cpu => &[("samples", "count"), ("cpu", "nanoseconds")],
        ProfileKind::OffCpu => &[("offcpu", "nanoseconds")],
    }
}

/// The period's (type, unit).
pub fn period_type(kind: ProfileKind) -> (&'static str, &'static str) {
    match kind {
        ProfileKind::Cpu => ("cpu", "nanoseconds"),
        ProfileKind::OffCpu => ("offcpu", "nanoseconds"),
    }
}

/// gzip'd `profile.proto` of the window, with every label.
pub fn encode(profile: &Profile) -> Vec<u8> {
    encode_with(profile, &EncodeOptions::ALL)
}

/// gzip'd `profile.proto` of the window, with the labels `options` asks for.
pub fn encode_with(profile: &Profile, options: &EncodeOptions) -> Vec<u8> {
    gzip(&build(profile, options).encode_to_vec())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 3), Compression::fast());
    // Writing into a Vec cannot fail; an empty file would be the only outcome if it did.
    if encoder.write_all(bytes).is_err() {
        return Vec::new();
    }
    encoder.finish().unwrap_or_default()
}

/// The `profile.proto` message of the window (not yet serialised).
pub fn build(profile: &Profile, options: &EncodeOptions) -> pb::Profile {
    let mut builder = Builder::default();
    let mut out = pb::Profile {
        sample_type: sample_types(profile.kind)
            .iter()
            .map(|(t, u)| builder.value_type(t, u))
            .collect(),
        ..Default::default()
    };
    let (period_kind, period_unit) = period_type(profile.kind);
    out.period_type = Some(builder.value_type(period_kind, period_unit));
    out.period = match profile.kind {
        ProfileKind::Cpu => to_i64(profile.period_ns()),
        // Off-CPU values are measured durations, not counts of a period.
        ProfileKind::OffCpu => 1,
    };
    out.time_nanos = to_i64(profile.start_unix_ns);
    out.duration_nanos = to_i64(profile.duration_ns);
    // `go tool pprof` and Pyroscope show this sample type first.
    let default = sample_types(profile.kind)
        .last()
        .map(|(t, _)| *t)
        .unwrap_or("");
    out.default_sample_type = builder.string(default);
    out.sample = profile
        .samples
        .iter()
        .map(|s| builder.sample(profile.kind, s, options))
        .collect();
    out.mapping = builder.mappings;
    out.location = builder.locations;
    out.function = builder.functions;
    out.string_table = builder.strings;
    out
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Interns strings and deduplicates mappings, functions and locations, handing out ids ≥ 1.
struct Builder {
    strings: Vec<String>,
    string_ids: HashMap<String, i64>,
    mappings: Vec<pb::Mapping>,
    mapping_ids: HashMap<String, u64>,
    functions: Vec<pb::Function>,
    function_ids: HashMap<(String, Option<String>), u64>,
    locations: Vec<pb::Location>,
    location_ids: HashMap<(Option<String>, u64, String), u64>,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            // The format requires "" at index 0.
            strings: vec![String::new()],
            string_ids: HashMap::from([(String::new(), 0)]),
            mappings: Vec::new(),
            mapping_ids: HashMap::new(),
            functions: Vec::new(),
            function_ids: HashMap::new(),
            locations: Vec::new(),
            location_ids: HashMap::new(),
        }
    }
}

impl Builder {
    fn string(&mut self, text: &str) -> i64 {
        if let Some(id) = self.string_ids.get(text) {
            return *id;
        }
        let id = self.strings.len() as i64;
        self.strings.push(text.to_string());
        self.string_ids.insert(text.to_string(), id);
        id
    }

    fn value_type(&mut self, kind: &str, unit: &str) -> pb::ValueType {
        pb::ValueType {
            r#type: self.string(kind),
            unit: self.string(unit),
        }
    }

    fn mapping(&mut self, module: &str) -> u64 {
        if let Some(id) = self.mapping_ids.get(module) {
            return *id;
        }
        let id = self.mappings.len() as u64 + 1;
        let filename = self.string(module);
        self.mappings.push(pb::Mapping {
            id,
            filename,
            // Frames arrive symbolised: consumers must not try to symbolise them again.
            has_functions: true,
            ..Default::default()
        });
        self.mapping_ids.insert(module.to_string(), id);
        id
    }

    fn function(&mut self, frame: &Frame) -> u64 {
        let key = (frame.function.clone(), frame.module.clone());
        if let Some(id) = self.function_ids.get(&key) {
            return *id;
        }
        let id = self.functions.len() as u64 + 1;
        let name = self.string(&frame.function);
        let filename = frame.module.as_deref().map_or(0, |m| self.string(m));
        self.functions.push(pb::Function {
            id,
            name,
            system_name: name,
            filename,
            start_line: 0,
        });
        self.function_ids.insert(key, id);
        id
    }

    fn location(&mut self, frame: &Frame) -> u64 {
        // The function is part of the key: one binary mapped at different bases in two
        // processes can put different functions at the same address.
        let key = (frame.module.clone(), frame.address, frame.function.clone());
        if let Some(id) = self.location_ids.get(&key) {
            return *id;
        }
        let id = self.locations.len() as u64 + 1;
        let mapping_id = frame.module.as_deref().map_or(0, |m| self.mapping(m));
        let function_id = self.function(frame);
        self.locations.push(pb::Location {
            id,
            mapping_id,
            address: frame.address,
            line: vec![pb::Line {
                function_id,
                line: 0,
            }],
            is_folded: false,
        });
        self.location_ids.insert(key, id);
        id
    }

    fn str_label(&mut self, key: &str, value: &str) -> pb::Label {
        pb::Label {
            key: self.string(key),
            str: self.string(value),
            ..Default::default()
        }
    }

    fn sample(
        &mut self,
        kind: ProfileKind,
        sample: &StackSample,
        options: &EncodeOptions,
    ) -> pb::Sample {
        let location_id = sample.frames.iter().map(|f| self.location(f)).collect();
        let value = match kind {
            ProfileKind::Cpu => vec![to_i64(sample.count), to_i64(sample.value_ns)],
            ProfileKind::OffCpu => vec![to_i64(sample.value_ns)],
        };
        let labels = &sample.labels;
        let mut label = Vec::new();
        if options.pid {
            label.push(pb::Label {
                key: self.string("pid"),
                num: i64::from(labels.pid),
                ..Default::default()
            });
        }
        if options.comm && !labels.comm.is_empty() {
            label.push(self.str_label("comm", &labels.comm));
        }
        if options.container {
            let fields = [
                ("container_id", &labels.container_id),
                ("container_name", &labels.container_name),
                ("pod", &labels.pod),
            ];
            for (key, value) in fields {
                if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                    label.push(self.str_label(key, value));
                }
            }
        }
        pb::Sample {
            location_id,
            value,
            label,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiling::SampleLabels;

    fn frame(function: &str, module: Option<&str>, address: u64) -> Frame {
        Frame {
            function: function.into(),
            module: module.map(str::to_string),
            kernel: false,
            address,
        }
    }

    fn window() -> Profile {
        let labels = SampleLabels {
            pid: 7,
            comm: "app".into(),
            ..Default::default()
        };
        Profile {
            kind: ProfileKind::Cpu,
            start_unix_ns: 1_000,
            duration_ns: 10_000_000_000,
            frequency_hz: 100,
            host: "h".into(),
            samples: vec![
                StackSample {
                    frames: vec![
                        frame("leaf", Some("/bin/app"), 0x10),
                        frame("main", Some("/bin/app"), 0x20),
                    ],
                    labels: labels.clone(),
                    count: 3,
                    value_ns: 30_000_000,
                },
                StackSample {
                    frames: vec![
                        frame("other", None, 0x30),
                        frame("main", Some("/bin/app"), 0x20),
                    ],
                    labels,
                    count: 1,
                    value_ns: 10_000_000,
                },
            ],
        }
    }

    #[test]
    fn ids_start_at_one_and_are_shared_between_samples() {
        let p = build(&window(), &EncodeOptions::ALL);
        assert_eq!(p.string_table[0], "");
        let ids = |v: Vec<u64>| v;
        assert_eq!(ids(p.mapping.iter().map(|m| m.id).collect()), [1]);
        assert_eq!(ids(p.function.iter().map(|f| f.id).collect()), [1, 2, 3]);
        assert_eq!(ids(p.location.iter().map(|l| l.id).collect()), [1, 2, 3]);
        // `main` at the same address is one location in both stacks.
        assert_eq!(p.sample[0].location_id, [1, 2]);
        assert_eq!(p.sample[1].location_id, [3, 2]);
        // A frame without a module has no mapping.
        assert_eq!(p.location[2].mapping_id, 0);
        assert_eq!(p.sample[0].value, [3, 30_000_000]);
        assert_eq!(p.period, 10_000_000);
        let name = |i: i64| p.string_table[i as usize].as_str();
        assert_eq!(name(p.default_sample_type), "cpu");
        assert_eq!(name(p.sample_type[1].r#type), "cpu");
    }

    #[test]
    fn options_leave_labels_out() {
        let only_comm = EncodeOptions {
            pid: false,
            comm: true,
            container: false,
        };
        let p = build(&window(), &only_comm);
        assert_eq!(p.sample[0].label.len(), 1);
        assert_eq!(p.string_table[p.sample[0].label[0].key as usize], "comm");
    }

    #[test]
    fn the_file_is_gzip_of_the_message() {
        let bytes = encode(&window());
        assert_eq!(&bytes[..2], &[0x1f, 0x8b]);
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut raw)
            .expect("gzip");
        let decoded = pb::Profile::decode(&raw[..]).expect("profile.proto");
        assert_eq!(decoded, build(&window(), &EncodeOptions::ALL));
    }
}
