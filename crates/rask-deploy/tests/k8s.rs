//! The Kubernetes manifests, read back as the API server's types (`k8s-openapi`).
//!
//! Every document is parsed into its typed object and also compared, as a generic tree, with
//! the typed object written back: `k8s-openapi` ignores fields it does not know, so a
//! misspelled field would otherwise pass unnoticed and be dropped by the API server too.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, PodSpec, Secret, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rask_deploy::k8s::{
    self, K8sOptions, PullPolicy, RUN_AS_USER, SECRET_KEYS, SecretMaterial, TLS_DIR,
};
use serde::Deserialize;

fn creds() -> SecretMaterial {
    SecretMaterial {
        ca_pem: "-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n".into(),
        cert_pem: "-----BEGIN CERTIFICATE-----\nY2VydA==\n-----END CERTIFICATE-----\n".into(),
        key_pem: "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n".into(),
        token: "0123456789abcdef".into(),
    }
}

/// The objects of one manifest file.
struct Objects {
    secret: Secret,
    scheduler: Deployment,
    service: Service,
    worker: Deployment,
    job: Option<Job>,
}

/// Parses `T` from a document and checks that nothing in the document was lost on the way.
fn typed<T>(doc: &serde_json::Value) -> T
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let obj: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{e}: {doc:#}"));
    let back = serde_json::to_value(&obj).unwrap();
    assert_eq!(
        &back, doc,
        "a field of the document is unknown to the API types"
    );
    obj
}

fn objects(opts: &K8sOptions) -> Objects {
    let text = k8s::manifests(opts, &creds()).unwrap();
    // One file, documents as a YAML reader splits them.
    let docs: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_json::Value::deserialize(d).unwrap())
        .collect();
    let listed = k8s::manifest_documents(opts, &creds()).unwrap();
    assert_eq!(docs.len(), listed.len());
    for (doc, m) in docs.iter().zip(&listed) {
        assert_eq!(doc["kind"], m.kind, "{}", m.yaml);
        assert_eq!(doc["metadata"]["name"], m.name.as_str());
        let alone: serde_json::Value = serde_yaml::from_str(&m.yaml).unwrap();
        assert_eq!(&alone, doc);
        match &opts.namespace {
            Some(ns) => assert_eq!(doc["metadata"]["namespace"], ns.as_str()),
            None => assert!(doc["metadata"].get("namespace").is_none()),
        }
    }
    let kinds: Vec<&str> = listed.iter().map(|m| m.kind).collect();
    let mut expected = vec!["Secret", "Deployment", "Service", "Deployment"];
    if opts.client_job {
        expected.push("Job");
    }
    assert_eq!(kinds, expected);
    Objects {
        secret: typed(&docs[0]),
        scheduler: typed(&docs[1]),
        service: typed(&docs[2]),
        worker: typed(&docs[3]),
        job: docs.get(4).map(typed),
    }
}

fn pod(d: &Deployment) -> &PodSpec {
    d.spec.template.spec.as_ref().unwrap()
}

fn only_container(p: &PodSpec) -> &Container {
    assert_eq!(p.containers.len(), 1);
    &p.containers[0]
}

fn ports(c: &Container) -> Vec<(String, i32)> {
    c.ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone().unwrap(), p.container_port))
        .collect()
}

fn quantities(
    m: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> (String, String) {
    let m = m.unwrap();
    (m["cpu"].0.clone(), m["memory"].0.clone())
}

/// The value after `flag` in `args`.
fn flag<'a>(args: &'a [String], flag: &str) -> &'a str {
    let i = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("{flag} missing from {args:?}"));
    &args[i + 1]
}

fn pod_labels(d: &Deployment) -> BTreeMap<String, String> {
    d.spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap()
}

fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Every pod spec of the file with its container.
fn pods(o: &Objects) -> Vec<(&str, &PodSpec)> {
    let mut v = vec![("scheduler", pod(&o.scheduler)), ("worker", pod(&o.worker))];
    if let Some(j) = &o.job {
        v.push((
            "client",
            j.spec.as_ref().unwrap().template.spec.as_ref().unwrap(),
        ));
    }
    v
}

#[test]
fn scheduler_deployment_and_service() {
    let opts = K8sOptions::default();
    let o = objects(&opts);
    let spec = &o.scheduler.spec;
    assert_eq!(o.scheduler.metadata.name.as_deref(), Some("rask-scheduler"));
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(
        spec.strategy.as_ref().unwrap().type_.as_deref(),
        Some("Recreate")
    );
    assert!(selects(
        spec.selector.match_labels.as_ref().unwrap(),
        &pod_labels(&o.scheduler)
    ));
    let c = only_container(pod(&o.scheduler));
    assert_eq!(c.image.as_deref(), Some("rask:latest"));
    assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(
        ports(c),
        [("scheduler".into(), 8786), ("dashboard".into(), 8787)]
    );
    assert_eq!(c.command.as_deref(), Some(&["rask".to_string()][..]));
    let args = c.args.as_ref().unwrap();
    assert_eq!(args, &opts.scheduler_args());
    assert_eq!(args[0], "scheduler");
    assert_eq!(flag(args, "--host"), "0.0.0.0");
    assert_eq!(flag(args, "--port"), "8786");
    assert_eq!(flag(args, "--dashboard"), "0.0.0.0:8787");
    for probe in [&c.readiness_probe, &c.liveness_probe] {
        let tcp = probe.as_ref().unwrap().tcp_socket.as_ref().unwrap();
        assert_eq!(tcp.port, IntOrString::Int(8786));
    }
    let res = c.resources.as_ref().unwrap();
    assert_eq!(quantities(res.limits.as_ref()), ("1".into(), "2Gi".into()));
    assert_eq!(
        quantities(res.requests.as_ref()),
        ("1".into(), "2Gi".into())
    );

    // The Service: both ports, by name, onto the scheduler pods and nothing else.
    let svc = o.service.spec.as_ref().unwrap();
    assert_eq!(o.service.metadata.name.as_deref(), Some("rask-scheduler"));
    assert_eq!(svc.type_.as_deref(), Some("ClusterIP"));
    let sp: Vec<(String, i32, IntOrString)> = svc
        .ports
        .iter()
        .flatten()
        .map(|p| {
            (
                p.name.clone().unwrap(),
                p.port,
                p.target_port.clone().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        sp,
        [
            (
                "scheduler".into(),
                8786,
                IntOrString::String("scheduler".into())
            ),
            (
                "dashboard".into(),
                8787,
                IntOrString::String("dashboard".into())
            ),
        ]
    );
    let selector = svc.selector.as_ref().unwrap();
    assert!(selects(selector, &pod_labels(&o.scheduler)));
    assert!(!selects(selector, &pod_labels(&o.worker)));
    let job_labels = o
        .job
        .as_ref()
        .unwrap()
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    assert!(!selects(selector, &job_labels));
}

#[test]
fn worker_deployment() {
    let opts = K8sOptions {
        name: "analytics".into(),
        worker_replicas: 5,
        worker_cpu: "1500m".into(),
        worker_memory: "6Gi".into(),
        image: "registry.example/rask:0.1".into(),
        image_pull_policy: PullPolicy::Always,
        ..Default::default()
    };
    let o = objects(&opts);
    let spec = &o.worker.spec;
    assert_eq!(o.worker.metadata.name.as_deref(), Some("analytics-worker"));
    assert_eq!(spec.replicas, Some(5));
    assert!(selects(
        spec.selector.match_labels.as_ref().unwrap(),
        &pod_labels(&o.worker)
    ));
    // The two Deployments must not select each other's pods.
    assert!(!selects(
        spec.selector.match_labels.as_ref().unwrap(),
        &pod_labels(&o.scheduler)
    ));
    let c = only_container(pod(&o.worker));
    assert_eq!(c.image.as_deref(), Some("registry.example/rask:0.1"));
    assert_eq!(c.image_pull_policy.as_deref(), Some("Always"));
    let res = c.resources.as_ref().unwrap();
    assert_eq!(
        quantities(res.limits.as_ref()),
        ("1500m".into(), "6Gi".into())
    );
    assert_eq!(
        quantities(res.requests.as_ref()),
        ("1500m".into(), "6Gi".into())
    );

    let args = c.args.as_ref().unwrap();
    assert_eq!(args, &opts.worker_args().unwrap());
    assert_eq!(args[0], "worker");
    // The scheduler's address is the Service's name and port.
    let svc_port = o.service.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].port;
    assert_eq!(
        args[1],
        format!("{}:{svc_port}", o.service.metadata.name.as_deref().unwrap())
    );
    assert_eq!(flag(args, "--nthreads"), "2", "1.5 CPUs rounded up");
    let limit: u64 = flag(args, "--memory-limit").parse().unwrap();
    assert_eq!(limit, (6u64 << 30) * 9 / 10);
    assert_eq!(limit, opts.worker_memory_limit().unwrap());
    assert_eq!(flag(args, "--listen"), "0.0.0.0:8788");
    assert_eq!(ports(c), [("data".into(), 8788)]);
    assert_eq!(flag(args, "--contact-host"), "$(POD_IP)");

    // Every `$(VAR)` in the arguments is defined before use, from the downward API.
    let env = c.env.as_ref().unwrap();
    for arg in args.iter().filter(|a| a.starts_with("$(")) {
        let var = &arg[2..arg.len() - 1];
        let e = env.iter().find(|e| e.name == var).unwrap();
        assert!(e.value_from.as_ref().unwrap().field_ref.is_some(), "{var}");
    }
    let field = |name: &str| {
        env.iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value_from.as_ref()?.field_ref.as_ref())
            .map(|f| f.field_path.clone())
    };
    assert_eq!(field("POD_IP").as_deref(), Some("status.podIP"));
    assert_eq!(field("POD_NAME").as_deref(), Some("metadata.name"));

    // Decided: no probes on workers (a worker exits on every failure a probe would see,
    // and its data port accepts connections at the kernel even when the process hangs).
    assert!(c.liveness_probe.is_none() && c.readiness_probe.is_none());
    // Spilling needs a writable /tmp under a read-only root filesystem.
    let mounts = c.volume_mounts.as_ref().unwrap();
    assert!(mounts.iter().any(|m| m.mount_path == "/tmp"));
}

#[test]
fn explicit_threads_and_memory_limit() {
    let opts = K8sOptions {
        worker_nthreads: Some(3),
        worker_memory_limit_bytes: Some(1_000_000_000),
        worker_memory: "2G".into(),
        ..Default::default()
    };
    let o = objects(&opts);
    let args = only_container(pod(&o.worker)).args.clone().unwrap();
    assert_eq!(flag(&args, "--nthreads"), "3");
    assert_eq!(flag(&args, "--memory-limit"), "1000000000");
}

#[test]
fn secret_holds_the_credentials_and_every_pod_mounts_it() {
    let o = objects(&K8sOptions {
        namespace: Some("science".into()),
        ..Default::default()
    });
    assert_eq!(o.secret.metadata.name.as_deref(), Some("rask-tls"));
    assert_eq!(o.secret.type_.as_deref(), Some("Opaque"));
    let data = o.secret.data.as_ref().unwrap();
    let c = creds();
    let expected = [&c.ca_pem, &c.cert_pem, &c.key_pem, &c.token];
    assert_eq!(data.len(), 4);
    // `ByteString` is base64-decoded by the API types: what the pods read is the input.
    for (key, value) in SECRET_KEYS.iter().zip(expected) {
        assert_eq!(data[*key].0, value.as_bytes(), "{key}");
    }

    for (what, p) in pods(&o) {
        let c = only_container(p);
        let sec = p.security_context.as_ref().unwrap();
        assert_eq!(sec.run_as_non_root, Some(true), "{what}");
        assert_eq!(sec.run_as_user, Some(RUN_AS_USER), "{what}");
        // Group-readable secret files need the pod's fsGroup.
        assert_eq!(sec.fs_group, Some(RUN_AS_USER), "{what}");
        let secret_volumes: Vec<_> = p
            .volumes
            .iter()
            .flatten()
            .filter_map(|v| Some((v.name.clone(), v.secret.as_ref()?)))
            .collect();
        assert_eq!(secret_volumes.len(), 1, "{what}");
        let (vol, src) = &secret_volumes[0];
        assert_eq!(src.secret_name.as_deref(), Some("rask-tls"), "{what}");
        assert_eq!(src.default_mode, Some(0o400), "{what}");
        let mount = c
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| &m.name == vol)
            .unwrap();
        assert_eq!(mount.mount_path, TLS_DIR, "{what}");
        assert_eq!(mount.read_only, Some(true), "{what}");
        // Every mount names a volume of the pod.
        for m in c.volume_mounts.iter().flatten() {
            assert!(
                p.volumes.iter().flatten().any(|v| v.name == m.name),
                "{what}: {}",
                m.name
            );
        }
        // Every file a flag or variable names is a key of the Secret.
        let mut named: Vec<String> = c.args.iter().flatten().cloned().collect();
        named.extend(c.env.iter().flatten().filter_map(|e| e.value.clone()));
        let files: Vec<&str> = named
            .iter()
            .filter_map(|a| a.strip_prefix(&format!("{TLS_DIR}/")))
            .collect();
        if what != "client" {
            let args = c.args.as_ref().unwrap();
            for (f, key) in [
                ("--tls-ca-file", "ca.pem"),
                ("--tls-cert-file", "cert.pem"),
                ("--tls-key-file", "key.pem"),
                ("--token-file", "token"),
            ] {
                assert_eq!(flag(args, f), format!("{TLS_DIR}/{key}"), "{what}");
            }
        }
        assert_eq!(files.len(), 4, "{what}: {named:?}");
        for f in files {
            assert!(data.contains_key(f), "{what}: {f}");
        }
    }
}

#[test]
fn client_job() {
    let opts = K8sOptions {
        client_command: vec![
            "my-pipeline".into(),
            "--input".into(),
            "s3://bucket/x".into(),
        ],
        ..Default::default()
    };
    let o = objects(&opts);
    let job = o.job.as_ref().unwrap();
    assert_eq!(job.metadata.name.as_deref(), Some("rask-client"));
    let spec = job.spec.as_ref().unwrap();
    assert_eq!(spec.backoff_limit, Some(3));
    let p = spec.template.spec.as_ref().unwrap();
    assert_eq!(p.restart_policy.as_deref(), Some("Never"));
    let c = only_container(p);
    assert_eq!(c.command.as_ref().unwrap(), &opts.client_command);
    assert!(c.args.is_none());
    let env: BTreeMap<&str, &str> = c
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.as_str(), e.value.as_deref().unwrap()))
        .collect();
    assert_eq!(env[k8s::ENV_SCHEDULER], "rask-scheduler:8786");
    assert_eq!(env[k8s::ENV_TLS_CA_FILE], format!("{TLS_DIR}/ca.pem"));
    assert_eq!(env[k8s::ENV_TLS_CERT_FILE], format!("{TLS_DIR}/cert.pem"));
    assert_eq!(env[k8s::ENV_TLS_KEY_FILE], format!("{TLS_DIR}/key.pem"));
    assert_eq!(env[k8s::ENV_TOKEN_FILE], format!("{TLS_DIR}/token"));

    let without = objects(&K8sOptions {
        client_job: false,
        client_command: Vec::new(),
        ..Default::default()
    });
    assert!(without.job.is_none());
}

#[test]
fn zero_workers_is_allowed() {
    // A cluster whose workers come later, with `kubectl scale`.
    let o = objects(&K8sOptions {
        worker_replicas: 0,
        ..Default::default()
    });
    assert_eq!(o.worker.spec.replicas, Some(0));
}

#[test]
fn awkward_strings_survive_quoting() {
    let command: Vec<String> = [
        "sh",
        "-c",
        "echo \"$RASK_SCHEDULER\" # not a comment: yes",
        "true",
        "0400",
        "-1",
        "",
        "---",
        "a\nb",
        "~",
        "null",
        "é",
        "\t",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let o = objects(&K8sOptions {
        client_command: command.clone(),
        ..Default::default()
    });
    let job = o.job.unwrap();
    let c = only_container(job.spec.as_ref().unwrap().template.spec.as_ref().unwrap());
    assert_eq!(c.command.as_ref().unwrap(), &command);
}

fn err(opts: K8sOptions) -> String {
    k8s::manifests(&opts, &creds()).unwrap_err().to_string()
}

#[test]
fn bad_options_are_errors_naming_them() {
    let e = err(K8sOptions {
        worker_memory: "4 gigs".into(),
        ..Default::default()
    });
    assert!(e.contains("worker_memory") && e.contains("`4 gigs`"), "{e}");
    assert!(e.contains("not a Kubernetes quantity"), "{e}");

    let e = err(K8sOptions {
        worker_memory: "4K".into(),
        ..Default::default()
    });
    assert!(e.contains("worker_memory") && e.contains("`k`"), "{e}");

    let e = err(K8sOptions {
        worker_cpu: "lots".into(),
        ..Default::default()
    });
    assert!(e.contains("worker_cpu") && e.contains("`lots`"), "{e}");

    let e = err(K8sOptions {
        scheduler_memory: "0".into(),
        ..Default::default()
    });
    assert!(e.contains("scheduler_memory") && e.contains("zero"), "{e}");

    for name in [
        "Rask",
        "rask_1",
        "1rask",
        "rask-",
        "-rask",
        "",
        &"r".repeat(54),
    ] {
        let e = err(K8sOptions {
            name: name.to_string(),
            ..Default::default()
        });
        assert!(e.contains("`name`"), "{name}: {e}");
        assert!(e.contains(&format!("`{name}`")), "{name}: {e}");
        assert!(e.contains("not a valid Kubernetes name"), "{name}: {e}");
    }
    // 53 characters is the longest name whose `-scheduler` Service still fits in 63.
    k8s::manifests(
        &K8sOptions {
            name: "r".repeat(53),
            ..Default::default()
        },
        &creds(),
    )
    .unwrap();

    let e = err(K8sOptions {
        namespace: Some("Big Data".into()),
        ..Default::default()
    });
    assert!(e.contains("namespace") && e.contains("`Big Data`"), "{e}");

    let e = err(K8sOptions {
        worker_nthreads: Some(0),
        ..Default::default()
    });
    assert!(e.contains("worker_nthreads"), "{e}");

    let e = err(K8sOptions {
        worker_memory: "4Gi".into(),
        worker_memory_limit_bytes: Some(5 << 30),
        ..Default::default()
    });
    assert!(
        e.contains("worker_memory_limit_bytes") && e.contains("4Gi"),
        "{e}"
    );

    let e = err(K8sOptions {
        dashboard_port: 8786,
        ..Default::default()
    });
    assert!(
        e.contains("dashboard_port") && e.contains("scheduler_port"),
        "{e}"
    );

    let e = err(K8sOptions {
        image: "my image".into(),
        ..Default::default()
    });
    assert!(e.contains("image"), "{e}");

    let e = err(K8sOptions {
        client_command: Vec::new(),
        ..Default::default()
    });
    assert!(e.contains("client_command"), "{e}");
}

/// `deploy/Dockerfile` cannot be built here (no container runtime); this checks that it
/// builds the `rask` binary and installs it where the manifests' `command: [rask]` finds it,
/// as the user the pods run as.
#[test]
fn dockerfile_matches_the_manifests() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/Dockerfile");
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let from: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .copied()
        .collect();
    assert_eq!(
        from,
        ["FROM rust:1-bookworm AS build", "FROM debian:bookworm-slim"]
    );
    assert!(text.contains("cargo build --release --locked -p rask-cli"));
    assert!(text.contains("COPY --from=build /rask /usr/local/bin/rask"));
    assert!(lines.contains(&format!("USER {RUN_AS_USER}:{RUN_AS_USER}").as_str()));
    assert!(text.contains(&format!("--uid {RUN_AS_USER}")));
    assert!(lines.contains(&r#"ENTRYPOINT ["/usr/local/bin/rask"]"#));
    let d = K8sOptions::default();
    let expose = format!(
        "EXPOSE {} {} {}",
        d.scheduler_port, d.dashboard_port, d.worker_port
    );
    assert!(lines.contains(&expose.as_str()), "{expose}");
    // The manifests run `rask` by name: /usr/local/bin is on the image's PATH.
    let o = objects(&d);
    for (what, p) in pods(&o) {
        if what != "client" {
            assert_eq!(
                only_container(p).command.as_deref(),
                Some(&["rask".to_string()][..])
            );
        }
    }
}
