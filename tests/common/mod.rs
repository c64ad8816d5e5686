//! Test harness: runs the real `huatuo-bamai` binary with a throw-away config (free port, private
//! control socket), scrapes it over HTTP and drives it through `huatuo-bamai ctl`.
#![allow(dead_code)]

pub mod chromium;
pub mod loop_device;
pub mod netns;
pub mod osmem;
pub mod prometheus;
pub mod upstream;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_huatuo-bamai");

/// True when BPF tests can run here (root + kernel BTF). With `HUATUO_REQUIRE_BPF` set, a
/// machine that cannot run them fails the test instead of skipping it.
pub fn bpf_available(test: &str) -> bool {
    let root = unsafe { libc::geteuid() } == 0;
    let btf = Path::new("/sys/kernel/btf/vmlinux").exists();
    if root && btf {
        return true;
    }
    let why = format!("root={root} btf={btf}");
    if std::env::var_os("HUATUO_REQUIRE_BPF").is_some() {
        panic!("{test}: BPF required (HUATUO_REQUIRE_BPF set) but unavailable: {why}");
    }
    eprintln!("SKIP {test}: BPF unavailable ({why})");
    false
}

/// Runs a command that must succeed (test set-up), naming it and its stderr if it does not.
pub fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Compiles the C `source` with frame pointers (so the profiler's stack walk names its
/// functions) into `dir/name`.
pub fn build_c(dir: &Path, name: &str, source: &str) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    let bin = dir.join(name);
    std::fs::write(&src, source).expect("write C source");
    run(
        "gcc",
        &[
            "-O1",
            "-fno-omit-frame-pointer",
            "-o",
            bin.to_str().expect("utf-8 path"),
            src.to_str().expect("utf-8 path"),
        ],
    );
    bin
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Agent {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub config_path: PathBuf,
    log_path: PathBuf,
}

/// A config with every probe disabled except those named, plus `extra` TOML appended.
pub fn config_text(port: u16, socket: &Path, enabled: &[&str], extra: &str) -> String {
    // `[agent]` and `[http]` tables in `extra` join the harness's own (a TOML table cannot be
    // opened twice).
    let mut extra = extra.to_string();
    let mut take_table = |header: &str| {
        let Some(at) = extra.find(header) else {
            return String::new();
        };
        let body_start = at + header.len();
        let body_end = extra[body_start..]
            .find("\n[")
            .map_or(extra.len(), |i| body_start + i + 1);
        let keys = extra[body_start..body_end].to_string();
        extra.replace_range(at..body_end, "");
        keys
    };
    let agent_keys = take_table("[agent]\n");
    let http_keys = take_table("[http]\n");
    let mut text = format!(
        "[agent]\nregion = \"test\"\nhostname = \"test-host\"\n{agent_keys}\
         [http]\nlisten = \"127.0.0.1:{port}\"\n{http_keys}\
         [control]\nsocket = \"{}\"\n",
        socket.display()
    );
    if !extra.contains("[events]") {
        // The event store lives beside the socket, in the test's own directory.
        let dir = socket.parent().unwrap_or(Path::new("."));
        text.push_str(&format!(
            "[events]\nstore_path = \"{}\"\n",
            dir.join("events.redb").display()
        ));
    }
    if !extra.contains("[sampler]") {
        // Exact-count tests must not be sampled by a budget a debug build can exceed;
        // tests/sampler.rs turns it on with its own budget.
        text.push_str("[sampler]\nenabled = false\n");
    }
    if !extra.contains("[supervisor]") {
        text.push_str(
            "[supervisor]\nrestart_backoff_initial_ms = 500\nrestart_backoff_max_ms = 2000\n",
        );
    }
    // A probe's table in `extra` gets the harness's `enabled`/`interval_ms` (where it does not
    // set them) right after its header: a TOML table cannot be opened twice.
    for probe in huatuo_bamai::registry::probe_names() {
        let enabled = enabled.contains(&probe);
        let interval = if probe == "loadavg" { 200 } else { 250 };
        let header = format!("[probes.{probe}]\n");
        let Some(at) = extra.find(&header) else {
            text.push_str(&format!(
                "{header}enabled = {enabled}\ninterval_ms = {interval}\n"
            ));
            continue;
        };
        let body_start = at + header.len();
        let body_end = extra[body_start..]
            .find("\n[")
            .map_or(extra.len(), |i| body_start + i + 1);
        let body = extra[body_start..body_end].to_string();
        let mut keys = String::new();
        if !body.lines().any(|l| l.trim_start().starts_with("enabled")) {
            keys.push_str(&format!("enabled = {enabled}\n"));
        }
        if !body
            .lines()
            .any(|l| l.trim_start().starts_with("interval_ms"))
        {
            keys.push_str(&format!("interval_ms = {interval}\n"));
        }
        extra.insert_str(body_start, &keys);
    }
    text.push_str(&extra);
    text
}

impl Agent {
    /// Starts the agent with only `enabled` probes and waits for /readyz.
    pub fn start(enabled: &[&str]) -> Agent {
        Self::start_with(enabled, "")
    }

    pub fn start_with(enabled: &[&str], extra: &str) -> Agent {
        Self::start_with_keys(enabled, &[], extra)
    }

    /// As [`Agent::start_with`], plus `(probe, keys)`: TOML lines put right under that probe's
    /// `[probes.<probe>]` header (a table cannot be opened twice, so `extra` cannot hold them).
    pub fn start_with_keys(enabled: &[&str], probe_keys: &[(&str, &str)], extra: &str) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let socket = dir.path().join("control.sock");
        let config_path = dir.path().join("huatuo-bamai.toml");
        let mut text = config_text(port, &socket, enabled, extra);
        for (probe, keys) in probe_keys {
            let header = format!("[probes.{probe}]\n");
            assert!(text.contains(&header), "no {header} in {text}");
            text = text.replacen(&header, &format!("{header}{keys}\n"), 1);
        }
        std::fs::write(&config_path, text).unwrap();
        let log_path = dir.path().join("agent.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(BIN)
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut agent = Agent {
            child,
            port,
            dir,
            socket,
            config_path,
            log_path,
        };
        agent.wait_ready(Duration::from_secs(20));
        agent
    }

    /// `tracer_id`s of the stored documents of `tracer` (at most 10 000, `/v1/events`' page).
    pub fn event_ids(&self, tracer: &str) -> Vec<String> {
        let (_, body) = self
            .get(&format!("/v1/events?tracer_name={tracer}&limit=10000"))
            .expect("GET /v1/events");
        let reply: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        reply["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["tracer_id"].as_str().map(str::to_string))
            .collect()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("agent exited early ({status}):\n{}", self.log());
            }
            if let Ok((204, _)) = self.get("/readyz") {
                return;
            }
            if Instant::now() > deadline {
                panic!("agent not ready in {timeout:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Plain HTTP/1.1 GET; returns (status, body).
    pub fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        http_get(self.port, path)
    }

    /// Plain HTTP/1.1 PUT with a JSON body; returns (status, body).
    pub fn put(&self, path: &str, body: &str) -> std::io::Result<(u16, String)> {
        http_request(self.port, "PUT", path, body)
    }

    pub fn metrics(&self) -> String {
        let (status, body) = self.get("/metrics").expect("scrape /metrics");
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Runs `huatuo-bamai ctl --socket S ARGS...`.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("ctl")
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }

    /// Sends raw lines to the control socket and returns one reply line per request line.
    pub fn raw_control(&self, lines: &[&str]) -> Vec<String> {
        let stream = UnixStream::connect(&self.socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        let mut replies = Vec::new();
        for line in lines {
            writer.write_all(line.as_bytes()).unwrap();
            writer.write_all(b"\n").unwrap();
            let mut reply = String::new();
            reader.read_line(&mut reply).unwrap();
            replies.push(reply.trim_end().to_string());
        }
        replies
    }

    /// Status of one actor from `ctl status --json`.
    pub fn actor_state(&self, name: &str) -> String {
        let out = self.ctl(&["--json", "status"]);
        let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        reply["result"]["actors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .map(|a| a["state"].as_str().unwrap().to_string())
            .unwrap_or_default()
    }

    pub fn wait_state(&self, name: &str, state: &str, timeout: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if self.actor_state(name) == state {
                return start.elapsed();
            }
            if start.elapsed() > timeout {
                panic!(
                    "{name} not {state} within {timeout:?} (is {}):\n{}",
                    self.actor_state(name),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    http_request(port, "GET", path, "")
}

/// Plain HTTP/1.1 request with a JSON body (may be empty); returns (status, body).
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = match raw.split_once("\r\n\r\n") {
        Some((headers, body))
            if headers
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked") =>
        {
            dechunk(body)
        }
        Some((_, body)) => body.to_string(),
        None => String::new(),
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Value of the first series whose line starts with `name{` and contains every `labels` pair.
pub fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Sum of every series of `name` matching `labels`.
pub fn sum(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Runs `promtool check metrics` on the text; None when promtool is not installed.
pub fn promtool_check(text: &str) -> Option<(bool, String)> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(text.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Upstream's netstat names (`netstat_TcpExt_ListenOverflows`) are kept for its dashboards;
    // promtool's camelCase lint on them is the one documented exception (docs/metrics.md).
    let problems: Vec<&str> = report
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !(l.starts_with("huatuo_bamai_netstat_") && l.contains("camelCase")))
        .collect();
    let ok = out.status.success() || problems.is_empty();
    Some((ok, problems.join("\n")))
}

/// Tracepoint names of the raw-tracepoint BPF links held open by process `pid` (from fdinfo).
pub fn link_tps_of(pid: u32) -> Vec<String> {
    link_fds_of(pid).into_iter().map(|(_, tp)| tp).collect()
}

/// (fd, tracepoint) of every raw-tracepoint BPF link held by `pid`.
pub fn link_fds_of(pid: u32) -> Vec<(u32, String)> {
    let mut links = Vec::new();
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return links;
    };
    for entry in entries.flatten() {
        let Ok(info) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        if !info.contains("link_type:") {
            continue;
        }
        let tp = info
            .lines()
            .find_map(|l| l.strip_prefix("tp_name:"))
            .map(|t| t.trim().to_string());
        let fd = entry.file_name().to_string_lossy().parse().ok();
        if let (Some(fd), Some(tp)) = (fd, tp) {
            links.push((fd, tp));
        }
    }
    links
}

/// A container-style cgroup (`docker/<random 64-hex id>`) in every hierarchy that matters, with
/// processes moved into it; killed and removed on drop.
pub struct TestContainer {
    pub id: String,
    pub dirs: Vec<std::path::PathBuf>,
    children: Vec<Child>,
}

impl TestContainer {
    pub fn create() -> Option<TestContainer> {
        Self::create_in(true)
    }

    /// A container in the v1 controller hierarchies only, as on a host without a unified
    /// mount (a task's default-hierarchy cgroup stays outside it); `None` on a pure v2 host.
    pub fn create_v1_only() -> Option<TestContainer> {
        if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            return None;
        }
        Self::create_in(false)
    }

    fn create_in(with_unified: bool) -> Option<TestContainer> {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ (std::process::id() as u64) << 32;
        let id = format!("{seed:016x}").repeat(4);
        let root = PathBuf::from("/sys/fs/cgroup");
        let hierarchies: Vec<PathBuf> = if root.join("cgroup.controllers").exists() {
            vec![root.clone()]
        } else {
            [
                "cpu",
                "cpuacct",
                "cpu,cpuacct",
                "memory",
                "pids",
                "blkio",
                "unified",
            ]
            .iter()
            .filter(|h| with_unified || **h != "unified")
            .map(|h| root.join(h))
            .filter(|h| h.is_dir() && !h.is_symlink())
            .collect()
        };
        let mut dirs = Vec::new();
        for hierarchy in hierarchies {
            let dir = hierarchy.join("docker").join(&id);
            std::fs::create_dir_all(&dir).ok()?;
            dirs.push(dir);
        }
        Some(TestContainer {
            id,
            dirs,
            children: Vec::new(),
        })
    }

    /// Starts `command` and moves it into the container's cgroups; returns its pid.
    pub fn spawn(&mut self, command: &mut Command) -> u32 {
        let child = command
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn process");
        let pid = child.id();
        for dir in &self.dirs {
            std::fs::write(dir.join("cgroup.procs"), pid.to_string()).expect("move into cgroup");
        }
        self.children.push(child);
        pid
    }

    /// The cgroup id discovery reports: the inode of the v2 directory (what
    /// bpf_get_current_cgroup_id() returns), else of the cpu hierarchy directory.
    pub fn expected_cgroup_id(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let v2 = |d: &&PathBuf| {
            d.starts_with("/sys/fs/cgroup/unified")
                || d.parent() == Some(Path::new("/sys/fs/cgroup/docker"))
        };
        let cpu = |d: &&PathBuf| d.starts_with("/sys/fs/cgroup/cpu");
        let dir = self
            .dirs
            .iter()
            .find(v2)
            .or_else(|| self.dirs.iter().find(cpu))
            .unwrap_or(&self.dirs[0]);
        std::fs::metadata(dir).unwrap().ino()
    }

    /// Kills the processes; the (now empty) cgroups stay until `remove`.
    pub fn kill_processes(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
    }

    /// Kills the processes and removes the cgroups.
    pub fn remove(&mut self) {
        self.kill_processes();
        for dir in &self.dirs {
            for _ in 0..100 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A probe context over the real host (`/proc`, `/sys`) with the containers that exist now, for
/// tests that run an event probe in-process and read its documents from the bus.
pub fn host_probe_context() -> huatuo_bamai::core::ProbeContext {
    use huatuo_bamai::containers::{cgroupfs, CgroupLayout, ContainerSet};
    let sysfs_root = PathBuf::from("/sys");
    let cgroup = CgroupLayout::detect(&sysfs_root);
    let containers = ContainerSet::new(cgroupfs::scan(&cgroup));
    let (_tx, containers) = tokio::sync::watch::channel(std::sync::Arc::new(containers));
    huatuo_bamai::core::ProbeContext {
        procfs_root: PathBuf::from("/proc"),
        sysfs_root,
        cgroup,
        containers,
        events: huatuo_bamai::events::EventSender::new(),
        profiles: Default::default(),
        captures: Default::default(),
        hostname: "test-host".to_string(),
        region: "test".to_string(),
    }
}

/// Collects `probe` every 100 ms until `done` holds for the documents published so far, or
/// `timeout`; returns them and the last collected set.
pub fn collect_until<P: huatuo_bamai::core::Probe>(
    probe: &mut P,
    ctx: &huatuo_bamai::core::ProbeContext,
    timeout: Duration,
    done: impl Fn(&[huatuo_bamai::events::EventDocument]) -> bool,
) -> (
    Vec<huatuo_bamai::events::EventDocument>,
    huatuo_bamai::exposition::MetricSet,
) {
    let mut rx = ctx.events.subscribe();
    let mut documents = Vec::new();
    let deadline = Instant::now() + timeout;
    loop {
        let mut set = huatuo_bamai::exposition::MetricSet::default();
        probe.collect(&mut set).expect("collect");
        while let Ok(document) = rx.try_recv() {
            documents.push(document.as_ref().clone());
        }
        if done(&documents) || Instant::now() > deadline {
            return (documents, set);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
