//! Fixtures shared by the enrichment tests: a kubelet `/pods` reply, and the OCI bundles
//! containerd (CRI plugin, Docker's `moby`, nerdctl) and CRI-O write for running containers.

use std::path::Path;

use super::BundleDirs;

pub(super) const PODS: &str = r#"{"items":[{"metadata":{"name":"web-0","namespace":"shop","uid":"u-1",
    "labels":{"app":"web","secret":"x"},"annotations":{"team":"a"},
    "ownerReferences":[{"kind":"StatefulSet"}]},
  "spec":{"hostname":""},
  "status":{"qosClass":"Burstable","containerStatuses":[
    {"name":"web","containerID":"containerd://aaaa","image":"nginx:1"},
    {"name":"istio-proxy","containerID":"containerd://bbbb","image":"istio"}]}},
 {"metadata":{"name":"agent-x","namespace":"kube-system","uid":"u-2","ownerReferences":[{"kind":"DaemonSet"}]},
  "spec":{"hostname":"agent"},
  "status":{"qosClass":"BestEffort","containerStatuses":[{"name":"agent","containerID":"docker://cccc"}]}}]}"#;

pub(super) const CTR_ID: &str = "c0ffee0123456789abcdef0123456789abcdef0123456789abcdef0123456789";
pub(super) const SANDBOX_ID: &str =
    "5a4db0c5a4db0c5a4db0c5a4db0c5a4db0c5a4db0c5a4db0c5a4db0c5a4db0c0";
pub(super) const CRIO_ID: &str = "c210cc0123456789abcdef0123456789abcdef0123456789abcdef0123456789";
pub(super) const MOBY_ID: &str = "d0cce70123456789abcdef0123456789abcdef0123456789abcdef0123456789";
pub(super) const NERD_ID: &str = "e7d0000123456789abcdef0123456789abcdef0123456789abcdef0123456789";
pub(super) const POD_UID: &str = "11111111-2222-3333-4444-555555555555";

/// An OCI runtime `config.json` as runc receives it (structure of the OCI runtime spec,
/// config.md: process, root, hostname, mounts, annotations, linux).
pub(super) fn oci_config(
    hostname: &str,
    annotations: &[(&str, &str)],
    cgroups_path: &str,
) -> String {
    let annotations: serde_json::Map<String, serde_json::Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    serde_json::json!({
        "ociVersion": "1.1.0",
        "process": {
            "user": {"uid": 0, "gid": 0, "additionalGids": [0]},
            "args": ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOSTNAME=web-0",
                "NGINX_VERSION=1.25.3"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_KILL"],
                "effective": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_KILL"],
                "permitted": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_KILL"]
            },
            "noNewPrivileges": false,
            "apparmorProfile": "cri-containerd.apparmor.d",
            "oomScoreAdj": 1000
        },
        "root": {"path": "rootfs"},
        "hostname": hostname,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/etc/hostname", "type": "bind",
             "source": "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/5a4db0c/hostname",
             "options": ["rbind", "rprivate", "rw"]}
        ],
        "annotations": annotations,
        "linux": {
            "resources": {
                "devices": [{"allow": false, "access": "rwm"}],
                "memory": {"limit": 134217728},
                "cpu": {"shares": 2, "quota": 50000, "period": 100000}
            },
            "cgroupsPath": cgroups_path,
            "namespaces": [
                {"type": "pid"},
                {"type": "ipc", "path": "/proc/4343/ns/ipc"},
                {"type": "uts", "path": "/proc/4343/ns/uts"},
                {"type": "mount"},
                {"type": "network", "path": "/proc/4343/ns/net"}
            ],
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/sys"]
        }
    })
    .to_string()
}

pub(super) fn containerd_cri_config() -> String {
    oci_config(
        "web-0",
        &[
            ("io.kubernetes.cri.container-name", "web"),
            ("io.kubernetes.cri.container-type", "container"),
            ("io.kubernetes.cri.image-name", "docker.io/library/nginx:1.25.3"),
            ("io.kubernetes.cri.sandbox-id", SANDBOX_ID),
            ("io.kubernetes.cri.sandbox-name", "web-0"),
            ("io.kubernetes.cri.sandbox-namespace", "shop"),
            ("io.kubernetes.cri.sandbox-uid", POD_UID),
        ],
        &format!("kubepods-besteffort-pod11111111_2222_3333_4444_555555555555.slice:cri-containerd:{CTR_ID}"),
    )
}

pub(super) fn crio_config() -> String {
    oci_config(
        "",
        &[
            ("io.container.manager", "cri-o"),
            ("io.kubernetes.container.hash", "4a5c2b1d"),
            ("io.kubernetes.container.name", "api"),
            ("io.kubernetes.cri-o.ContainerID", CRIO_ID),
            ("io.kubernetes.cri-o.ContainerType", "container"),
            ("io.kubernetes.cri-o.ImageName", "quay.io/acme/api:2.4"),
            (
                "io.kubernetes.cri-o.Name",
                "k8s_api_api-7d9f_prod_66666666-7777-8888-9999-000000000000_0",
            ),
            ("io.kubernetes.pod.name", "api-7d9f"),
            ("io.kubernetes.pod.namespace", "prod"),
            (
                "io.kubernetes.pod.uid",
                "66666666-7777-8888-9999-000000000000",
            ),
        ],
        &format!("kubepods-burstable-pod66666666_7777_8888_9999_000000000000.slice:crio:{CRIO_ID}"),
    )
}

pub(super) fn write(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
}

/// containerd state (k8s.io, moby, default namespaces) and CRI-O storage under `root`.
pub(super) fn bundle_tree(root: &Path) -> BundleDirs {
    let dirs = BundleDirs {
        containerd_state_dir: root.join("run/containerd/io.containerd.runtime.v2.task"),
        crio_storage_dir: root.join("run/containers/storage/overlay-containers"),
    };
    let ctrd = &dirs.containerd_state_dir;
    write(
        &ctrd.join("k8s.io").join(CTR_ID).join("config.json"),
        &containerd_cri_config(),
    );
    std::fs::write(ctrd.join("k8s.io").join(CTR_ID).join("init.pid"), "4343").unwrap();
    write(
        &ctrd.join("k8s.io").join(SANDBOX_ID).join("config.json"),
        &oci_config(
            "web-0",
            &[
                ("io.kubernetes.cri.container-type", "sandbox"),
                ("io.kubernetes.cri.sandbox-id", SANDBOX_ID),
                ("io.kubernetes.cri.sandbox-name", "web-0"),
                ("io.kubernetes.cri.sandbox-namespace", "shop"),
            ],
            "",
        ),
    );
    write(
        &ctrd.join("moby").join(MOBY_ID).join("config.json"),
        &oci_config("d0cce7012345", &[], &format!("/docker/{MOBY_ID}")),
    );
    write(
        &ctrd.join("default").join(NERD_ID).join("config.json"),
        &oci_config(
            "e7d000012345",
            &[
                ("nerdctl/name", "redis"),
                ("nerdctl/namespace", "default"),
                ("nerdctl/platform", "linux/amd64"),
            ],
            &format!("/default/{NERD_ID}"),
        ),
    );
    write(
        &dirs
            .crio_storage_dir
            .join(CRIO_ID)
            .join("userdata/config.json"),
        &crio_config(),
    );
    dirs
}
