//! Hand-written prost messages: pprof's `profile.proto` and the parts of Pyroscope's
//! `querier.v1` / `types.v1` the querier endpoints speak. Field numbers follow the published
//! .proto files; only the fields we write or read are declared (unknown fields are skipped on
//! decode, as protobuf allows).

pub mod profile;
pub mod querier;
