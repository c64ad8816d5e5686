//! Root test of the netdev_events probe against the real kernel: a veth pair in the host network
//! namespace whose one end matches the configured `devices`, set down and up (and its peer, for
//! carrier changes), becomes exactly one `netdev_events` document per change with the right
//! linkstatus, ifname, index, mac and driver, read back from the agent's store; the linkstatus
//! counters in /metrics equal the changes made (carrier ones also the kernel's own sysfs
//! carrier_up_count / carrier_down_count). The peer (outside the list) and a matching device in
//! another network namespace produce nothing.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use huatuo_bamai::events::EventDocument;

use common::netns::Netns;
use common::{run, Agent};

/// Deletes the veth pair (both ends) when the test ends, also on failure.
struct Veth(String);

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).output();
    }
}

fn sysfs(device: &str, file: &str) -> String {
    let path = format!("/sys/class/net/{device}/{file}");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .to_string()
}

fn sysfs_count(device: &str, file: &str) -> u64 {
    let text = sysfs(device, file);
    text.parse()
        .unwrap_or_else(|e| panic!("{device}/{file} = {text:?}: {e}"))
}

/// The stored netdev_events documents, oldest first.
fn documents(agent: &Agent) -> Vec<EventDocument> {
    let (status, body) = agent
        .get("/v1/events?tracer_name=netdev_events&limit=10000")
        .expect("GET /v1/events");
    assert_eq!(status, 200, "{body}");
    let reply: serde_json::Value = serde_json::from_str(&body).expect("JSON reply");
    let mut docs: Vec<EventDocument> =
        serde_json::from_value(reply["data"].clone()).expect("documents");
    docs.sort_by(|a, b| a.tracer_id.cmp(&b.tracer_id));
    docs
}

/// Waits until `count` documents are stored (and returns them).
fn wait_documents(agent: &Agent, count: usize, after: &str) -> Vec<EventDocument> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let docs = documents(agent);
        if docs.len() >= count {
            return docs;
        }
        assert!(
            Instant::now() < deadline,
            "after `{after}`: {} documents, want {count}: {docs:#?}\n{}",
            docs.len(),
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn link_changes_of_listed_devices_are_one_document_each_and_counted() {
    if !common::bpf_available("link_changes_of_listed_devices_are_one_document_each_and_counted") {
        return;
    }
    let id = std::process::id() % 100_000;
    let watched = format!("hnde{id}");
    let peer = format!("hndp{id}");
    let _ = Command::new("ip").args(["link", "del", &watched]).output();
    let agent = Agent::start_with_keys(
        &["netdev_events"],
        &[("netdev_events", "devices = [\"hnde*\"]")],
        "",
    );
    agent.wait_state("netdev_events", "running", Duration::from_secs(10));

    // Created after the probe started: remembered, not reported (as upstream's start-up scan).
    run(
        "ip",
        &[
            "link",
            "add",
            &watched,
            "address",
            "02:68:6e:64:65:01",
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ],
    );
    let _veth = Veth(watched.clone());
    let index: i32 = sysfs(&watched, "ifindex").parse().expect("ifindex");
    let mac = sysfs(&watched, "address");
    let carrier_up_before = sysfs_count(&watched, "carrier_up_count");
    let carrier_down_before = sysfs_count(&watched, "carrier_down_count");

    // A device matching the list in another network namespace: never seen (host netns only).
    let netns = Netns::create("netdev-events");
    let inner = format!("hnde{id}n");
    netns.run(
        "ip",
        &[
            "link", "add", &inner, "type", "veth", "peer", "name", "hndq0",
        ],
    );

    let steps: [(&[&str], &str); 5] = [
        (&["link", "set", &watched, "up"], "linkstatus_adminup"),
        // The peer up brings the watched end's carrier (veth has carrier when both ends are up).
        (&["link", "set", &peer, "up"], "linkstatus_carrierup"),
        (
            &["link", "set", &watched, "down"],
            "linkstatus_admindown, linkstatus_carrierdown",
        ),
        (
            &["link", "set", &watched, "up"],
            "linkstatus_adminup, linkstatus_carrierup",
        ),
        (&["link", "set", &peer, "down"], "linkstatus_carrierdown"),
    ];
    for (n, (args, _)) in steps.iter().enumerate() {
        run("ip", args);
        netns.run(
            "ip",
            &[
                "link",
                "set",
                &inner,
                if n % 2 == 0 { "up" } else { "down" },
            ],
        );
        wait_documents(&agent, n + 1, &args.join(" "));
    }
    // Anything more would be stored within a few ticks (interval 250 ms).
    std::thread::sleep(Duration::from_millis(1500));
    let docs = documents(&agent);
    let got: Vec<(&str, &str)> = docs
        .iter()
        .map(|d| {
            (
                d.tracer_data["ifname"].as_str().unwrap_or_default(),
                d.tracer_data["linkstatus"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    let want: Vec<(&str, &str)> = steps.iter().map(|(_, s)| (watched.as_str(), *s)).collect();
    assert_eq!(got, want, "one document per change, in order: {docs:#?}");

    for document in &docs {
        assert_eq!(document.tracer_name, "netdev_events");
        common::upstream::assert_upstream_shape(document);
        assert!(
            document.container_id.is_empty(),
            "a host event: {document:#?}"
        );
        let data = &document.tracer_data;
        assert_eq!(data["index"].as_i64(), Some(i64::from(index)), "{data:#}");
        assert_eq!(data["mac"].as_str(), Some(mac.as_str()), "{data:#}");
        assert_eq!(data["start"].as_bool(), Some(false), "{data:#}");
        // ethtool -i of a veth: the kernel's veth driver name and DRV_VERSION, no firmware.
        assert_eq!(data["driver"].as_str(), Some("veth"), "{data:#}");
        assert_eq!(data["driver_version"].as_str(), Some("1.0"), "{data:#}");
        assert_eq!(data["firmware_version"].as_str(), Some(""), "{data:#}");
    }

    // The counters: two admin ups and one down were made; the carrier ones also match the
    // kernel's own count of carrier transitions of the device.
    let carrier_up = sysfs_count(&watched, "carrier_up_count") - carrier_up_before;
    let carrier_down = sysfs_count(&watched, "carrier_down_count") - carrier_down_before;
    assert_eq!((carrier_up, carrier_down), (2, 2), "sysfs carrier counts");
    let metrics = agent.metrics();
    let labels = [
        ("device", watched.as_str()),
        ("driver", "veth"),
        ("driver_version", "1.0"),
        ("firmware_version", ""),
    ];
    let value = |status: &str| {
        common::sample(
            &metrics,
            &format!("huatuo_bamai_netdev_events_linkstatus_{status}_total"),
            &labels,
        )
    };
    assert_eq!(
        [
            value("adminup"),
            value("admindown"),
            value("carrierup"),
            value("carrierdown"),
        ],
        [
            Some(2.0),
            Some(1.0),
            Some(carrier_up as f64),
            Some(carrier_down as f64)
        ],
        "{metrics}"
    );
    for other in [peer.as_str(), inner.as_str()] {
        assert!(
            !metrics.contains(&format!("device=\"{other}\"")),
            "{other} is not watched:\n{metrics}"
        );
    }
    assert_eq!(
        common::sample(
            &metrics,
            "huatuo_bamai_netdev_events_malformed_messages_total",
            &[]
        ),
        Some(0.0)
    );
}
