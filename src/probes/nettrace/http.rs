//! Protocol inference from the first bytes of a message: HTTP/1.x request lines (method,
//! path, version, an incoming W3C `traceparent`) and status lines. Anything else is the
//! generic request/response-on-TCP fallback.

const METHODS: [&str; 9] = [
    "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
];
/// A path longer than this is cut (payload capture is bounded anyway).
const MAX_PATH: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: &'static str,
    /// The request target, without the query string.
    pub path: String,
    /// `1.0` / `1.1`; empty when the captured bytes end before the version.
    pub version: String,
    pub traceparent: Option<TraceParent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
}

/// A W3C trace context (`traceparent: 00-<trace-id>-<parent-id>-<flags>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: u128,
    pub parent_id: u64,
    pub sampled: bool,
}

/// `GET /path HTTP/1.1\r\n...`: the request line of an HTTP/1.x request.
pub fn parse_request(payload: &[u8]) -> Option<HttpRequest> {
    let method = METHODS.iter().find(|m| {
        payload.len() > m.len() + 1 && payload.starts_with(m.as_bytes()) && payload[m.len()] == b' '
    })?;
    let rest = &payload[method.len() + 1..];
    let line_end = rest.iter().position(|b| *b == b'\r' || *b == b'\n');
    let line = &rest[..line_end.unwrap_or(rest.len())];
    let (target, version) = match line.iter().rposition(|b| *b == b' ') {
        Some(sp) => (&line[..sp], &line[sp + 1..]),
        // The capture ended inside the target.
        None if line_end.is_none() => (line, &b""[..]),
        None => return None,
    };
    let version = match version {
        b"HTTP/1.1" => "1.1",
        b"HTTP/1.0" => "1.0",
        b"" if line_end.is_none() => "",
        v if line_end.is_none() && b"HTTP/1.1".starts_with(v) => "",
        _ => return None,
    };
    // Origin form (`/x`), absolute form (proxies), `*` (OPTIONS) or authority (CONNECT).
    if target.is_empty() || target.iter().any(|b| b.is_ascii_control()) {
        return None;
    }
    let target = String::from_utf8_lossy(target);
    let path = target.split('?').next().unwrap_or_default();
    let mut path: String = path.chars().take(MAX_PATH).collect();
    if path.is_empty() {
        path.push('/');
    }
    Some(HttpRequest {
        method,
        path,
        version: version.to_string(),
        traceparent: header(payload, "traceparent").and_then(parse_traceparent),
    })
}

/// `HTTP/1.1 200 OK\r\n`: the status of an HTTP/1.x response.
pub fn parse_response(payload: &[u8]) -> Option<HttpResponse> {
    let rest = payload
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| payload.strip_prefix(b"HTTP/1.0 "))?;
    let digits = rest.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit)
        || rest.get(3).is_some_and(|b| *b != b' ' && *b != b'\r')
    {
        return None;
    }
    let status = std::str::from_utf8(digits).ok()?.parse().ok()?;
    (100..600)
        .contains(&status)
        .then_some(HttpResponse { status })
}

/// The value of header `name` (case-insensitive) among the captured header lines.
fn header<'a>(payload: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let head_end = find(payload, b"\r\n\r\n").unwrap_or(payload.len());
    payload[..head_end]
        .split(|b| *b == b'\n')
        .skip(1)
        .find_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|b| *b == b':')?;
            line[..colon]
                .eq_ignore_ascii_case(name.as_bytes())
                .then(|| line[colon + 1..].trim_ascii())
        })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Version 00 (or a later version's first four fields), ids non-zero, lower-case hex.
pub fn parse_traceparent(value: &[u8]) -> Option<TraceParent> {
    let text = std::str::from_utf8(value).ok()?;
    let mut parts = text.split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let parent = parts.next()?;
    let flags = parts.next()?;
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !hex(version, 2) || version == "ff" || !hex(trace, 32) || !hex(parent, 16) || !hex(flags, 2)
    {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    let trace_id = u128::from_str_radix(trace, 16).ok()?;
    let parent_id = u64::from_str_radix(parent, 16).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    (trace_id != 0 && parent_id != 0).then_some(TraceParent {
        trace_id,
        parent_id,
        sampled: flags & 1 == 1,
    })
}
