//! Connect JSON request bodies (int64 fields as numbers or strings, as protojson writes them)
//! turned into the protobuf requests, and the reply in either codec.

use super::*;

pub(super) fn int64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int {
        Number(i64),
        Text(String),
    }
    match Int::deserialize(d)? {
        Int::Number(n) => Ok(n),
        Int::Text(text) => text.parse().map_err(serde::de::Error::custom),
    }
}

pub(super) fn opt_int64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    int64(d).map(Some)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ProfileTypesJson {
    #[serde(deserialize_with = "int64")]
    pub(super) start: i64,
    #[serde(deserialize_with = "int64")]
    pub(super) end: i64,
}

impl From<ProfileTypesJson> for pb::ProfileTypesRequest {
    fn from(j: ProfileTypesJson) -> Self {
        Self {
            start: j.start,
            end: j.end,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct LabelNamesJson {
    pub(super) matchers: Vec<String>,
    #[serde(deserialize_with = "int64")]
    pub(super) start: i64,
    #[serde(deserialize_with = "int64")]
    pub(super) end: i64,
}

impl From<LabelNamesJson> for pb::LabelNamesRequest {
    fn from(j: LabelNamesJson) -> Self {
        Self {
            matchers: j.matchers,
            start: j.start,
            end: j.end,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct LabelValuesJson {
    pub(super) name: String,
    pub(super) matchers: Vec<String>,
    #[serde(deserialize_with = "int64")]
    pub(super) start: i64,
    #[serde(deserialize_with = "int64")]
    pub(super) end: i64,
}

impl From<LabelValuesJson> for pb::LabelValuesRequest {
    fn from(j: LabelValuesJson) -> Self {
        Self {
            name: j.name,
            matchers: j.matchers,
            start: j.start,
            end: j.end,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct SelectMergeJson {
    #[serde(rename = "profileTypeID", alias = "profile_typeID")]
    pub(super) profile_type_id: String,
    #[serde(rename = "labelSelector", alias = "label_selector")]
    pub(super) label_selector: String,
    #[serde(deserialize_with = "int64")]
    pub(super) start: i64,
    #[serde(deserialize_with = "int64")]
    pub(super) end: i64,
    #[serde(
        rename = "maxNodes",
        alias = "max_nodes",
        deserialize_with = "opt_int64"
    )]
    pub(super) max_nodes: Option<i64>,
    pub(super) format: Value,
}

impl From<SelectMergeJson> for pb::SelectMergeStacktracesRequest {
    fn from(j: SelectMergeJson) -> Self {
        let format = match &j.format {
            Value::Number(n) => n.as_i64().unwrap_or(0) as i32,
            Value::String(s) if s == "PROFILE_FORMAT_TREE" => 2,
            Value::String(s) if s == "PROFILE_FORMAT_FLAMEGRAPH" => 1,
            _ => 0,
        };
        Self {
            profile_type_id: j.profile_type_id,
            label_selector: j.label_selector,
            start: j.start,
            end: j.end,
            max_nodes: j.max_nodes,
            format,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct SelectSeriesJson {
    #[serde(rename = "profileTypeID", alias = "profile_typeID")]
    pub(super) profile_type_id: String,
    #[serde(rename = "labelSelector", alias = "label_selector")]
    pub(super) label_selector: String,
    #[serde(deserialize_with = "int64")]
    pub(super) start: i64,
    #[serde(deserialize_with = "int64")]
    pub(super) end: i64,
    #[serde(rename = "groupBy", alias = "group_by")]
    pub(super) group_by: Vec<String>,
    pub(super) step: f64,
}

impl From<SelectSeriesJson> for pb::SelectSeriesRequest {
    fn from(j: SelectSeriesJson) -> Self {
        Self {
            profile_type_id: j.profile_type_id,
            label_selector: j.label_selector,
            start: j.start,
            end: j.end,
            group_by: j.group_by,
            step: j.step,
        }
    }
}

pub(super) enum Reply {
    Types(pb::ProfileTypesResponse),
    Names(pb::NamesResponse),
    Flame(pb::FlameGraph),
    Series(pb::SelectSeriesResponse),
}

impl From<pb::ProfileTypesResponse> for Reply {
    fn from(r: pb::ProfileTypesResponse) -> Self {
        Reply::Types(r)
    }
}

impl From<pb::NamesResponse> for Reply {
    fn from(r: pb::NamesResponse) -> Self {
        Reply::Names(r)
    }
}

impl Reply {
    pub(super) fn into_response(self, codec: Codec) -> Response {
        if codec == Codec::Proto {
            let bytes = match self {
                Reply::Types(r) => r.encode_to_vec(),
                Reply::Names(r) => r.encode_to_vec(),
                Reply::Flame(f) => pb::SelectMergeStacktracesResponse {
                    flamegraph: Some(f),
                }
                .encode_to_vec(),
                Reply::Series(r) => r.encode_to_vec(),
            };
            return ([(header::CONTENT_TYPE, "application/proto")], bytes).into_response();
        }
        // protojson: int64 as strings, camelCase names (ProfileType.ID keeps its name).
        let body = match self {
            Reply::Types(r) => json!({ "profileTypes": r.profile_types.iter().map(|t| json!({
                "ID": t.id, "name": t.name, "sampleType": t.sample_type, "sampleUnit": t.sample_unit,
                "periodType": t.period_type, "periodUnit": t.period_unit,
            })).collect::<Vec<_>>() }),
            Reply::Names(r) => json!({ "names": r.names }),
            Reply::Flame(f) => json!({ "flamegraph": {
                "names": f.names,
                "levels": f.levels.iter().map(|l| json!({
                    "values": l.values.iter().map(i64::to_string).collect::<Vec<_>>()
                })).collect::<Vec<_>>(),
                "total": f.total.to_string(),
                "maxSelf": f.max_self.to_string(),
            }}),
            Reply::Series(r) => json!({ "series": r.series.iter().map(|s| json!({
                "labels": s.labels.iter().map(|l| json!({"name": l.name, "value": l.value})).collect::<Vec<_>>(),
                "points": s.points.iter().map(|p| json!({"value": p.value, "timestamp": p.timestamp.to_string()})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>() }),
        };
        (
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}
