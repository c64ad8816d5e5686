//! Tracepoint records decoded with the tracepoint's own `format` file from tracefs: the field
//! list (`Format::parse`) and a raw record turned into a JSON object field by field
//! (`Format::decode`), so a kernel that moves a field still decodes right. The classic-tracepoint
//! probes (ras, netdev_txqueue_timeout) copy the raw record in BPF and decode it here.

use serde_json::{Map, Value};

/// The tracefs `events` directories below sysfs: tracefs itself, then below debugfs.
pub const TRACEFS_EVENTS: [&str; 2] = ["kernel/tracing/events", "kernel/debug/tracing/events"];

/// The `format` of tracepoint `category:name` under `sysfs_root`: `Ok(None)` when this kernel
/// lacks the tracepoint, `Err` (the path and what is wrong) when its format does not parse.
pub fn read_format(
    sysfs_root: &std::path::Path,
    category: &str,
    name: &str,
) -> Result<Option<Format>, (String, String)> {
    for events in TRACEFS_EVENTS {
        let path = sysfs_root
            .join(events)
            .join(category)
            .join(name)
            .join("format");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        return Format::parse(&text)
            .map(Some)
            .map_err(|reason| (path.display().to_string(), reason));
    }
    Ok(None)
}

/// One `field:` line of a tracepoint format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// The C type as written (`unsigned int`, `__data_loc char[]`, `u8[16]`, `char[32]`).
    pub ctype: String,
    pub offset: usize,
    pub size: usize,
    pub signed: bool,
}

/// The fields of a tracepoint record, without the `common_*` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub fields: Vec<Field>,
}

impl Format {
    /// Parses a tracefs `format` file; an error names the line that is not a field.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut fields = Vec::new();
        for line in text.lines().map(str::trim) {
            let Some(rest) = line.strip_prefix("field:") else {
                continue;
            };
            let bad = |what: &str| format!("format line {line:?}: {what}");
            let mut parts = rest.split(';').map(str::trim);
            let decl = parts.next().ok_or_else(|| bad("no declaration"))?;
            let mut value = |key: &str| -> Result<usize, String> {
                parts
                    .next()
                    .and_then(|p| p.strip_prefix(key))
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| bad(&format!("no {key}<number>")))
            };
            let offset = value("offset:")?;
            let size = value("size:")?;
            let signed = value("signed:")? != 0;
            // `type name` or `type name[N]`: the name is the last word, an array suffix moves to
            // the type.
            let (ctype, name) = decl.rsplit_once(' ').ok_or_else(|| bad("no field name"))?;
            let (name, array) = match name.split_once('[') {
                Some((n, a)) => (n, format!("[{a}")),
                None => (name, String::new()),
            };
            if name.starts_with("common_") {
                continue;
            }
            fields.push(Field {
                name: name.to_string(),
                ctype: format!("{ctype}{array}"),
                offset,
                size,
                signed,
            });
        }
        if fields.is_empty() {
            return Err("format has no fields".into());
        }
        Ok(Self { fields })
    }

    /// The raw bytes of field `name` in `data` (`None` when absent or past the copy).
    pub fn raw<'a>(&self, data: &'a [u8], name: &str) -> Option<&'a [u8]> {
        let f = self.fields.iter().find(|f| f.name == name)?;
        data.get(f.offset..f.offset + f.size)
    }

    /// Decodes a raw record: integers as numbers, `char` arrays and `__data_loc char[]` as
    /// text, other arrays as hex. Fields past the copied bytes are left out (the record was
    /// longer than ras.bpf.c copies); `truncated` lists them.
    pub fn decode(&self, data: &[u8]) -> Map<String, Value> {
        let mut out = Map::new();
        let mut truncated = Vec::new();
        for f in &self.fields {
            let Some(raw) = data.get(f.offset..f.offset + f.size) else {
                truncated.push(Value::String(f.name.clone()));
                continue;
            };
            let value = if f.ctype.starts_with("__data_loc") {
                // u32: length << 16 | offset from the record's start.
                let loc = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
                let (off, len) = (loc & 0xffff, loc >> 16);
                match data.get(off..off + len) {
                    Some(bytes) if f.ctype.contains("char") => text(bytes),
                    Some(bytes) => hex(bytes),
                    None => {
                        truncated.push(Value::String(f.name.clone()));
                        continue;
                    }
                }
            } else if f.ctype.ends_with(']') {
                if f.ctype.starts_with("char") {
                    text(raw)
                } else {
                    hex(raw)
                }
            } else {
                integer(raw, f.signed)
            };
            out.insert(f.name.clone(), value);
        }
        if !truncated.is_empty() {
            out.insert("truncated".into(), Value::Array(truncated));
        }
        out
    }
}

fn integer(raw: &[u8], signed: bool) -> Value {
    let mut bytes = [0u8; 8];
    bytes[..raw.len().min(8)].copy_from_slice(&raw[..raw.len().min(8)]);
    let unsigned = u64::from_le_bytes(bytes);
    if signed {
        let shift = 64 - 8 * raw.len().clamp(1, 8) as u32;
        Value::from(((unsigned << shift) as i64) >> shift)
    } else {
        Value::from(unsigned)
    }
}

fn text(bytes: &[u8]) -> Value {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    Value::String(String::from_utf8_lossy(&bytes[..end]).into_owned())
}

fn hex(bytes: &[u8]) -> Value {
    Value::String(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
