//! Names, hostnames and images of Docker containers from the Docker Engine API
//! (`GET /containers/<id>/json` on its Unix socket).

use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct DockerInspect {
    name: String,
    config: DockerConfig,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct DockerConfig {
    hostname: String,
    image: String,
}

/// Name, hostname and image from a Docker `inspect` reply.
pub fn parse_docker_inspect(body: &[u8]) -> Result<(String, String, String), String> {
    let inspect: DockerInspect =
        serde_json::from_slice(body).map_err(|e| format!("malformed docker inspect reply: {e}"))?;
    Ok((
        inspect.name.trim_start_matches('/').to_string(),
        inspect.config.hostname,
        inspect.config.image,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_inspect_names() {
        let body = br#"{"Name":"/redis","Config":{"Hostname":"c0ffee","Image":"redis:7"}}"#;
        assert_eq!(
            parse_docker_inspect(body).unwrap(),
            ("redis".into(), "c0ffee".into(), "redis:7".into())
        );
    }
}
