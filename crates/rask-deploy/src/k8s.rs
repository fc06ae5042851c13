//! Kubernetes manifests for a rask cluster.
//!
//! [`manifests`] turns [`K8sOptions`] and the cluster's [`SecretMaterial`] (CA, certificate,
//! private key, token) into one multi-document YAML file for `kubectl apply -f`:
//!
//! - a Secret `<name>-tls` holding `ca.pem`, `cert.pem`, `key.pem` and `token`, mounted
//!   read-only at [`TLS_DIR`] in every pod;
//! - a scheduler Deployment (one replica, `Recreate`, so two schedulers never split the
//!   workers between them during an update) with TCP probes on the scheduler port;
//! - a ClusterIP Service `<name>-scheduler` for the scheduler and dashboard ports: workers and
//!   clients reach the scheduler by that name, which outlives any one scheduler pod;
//! - a worker Deployment whose replicas `kubectl scale deployment/<name>-worker` changes;
//! - a client Job running a given command with the scheduler's address and the credential
//!   files in its environment.
//!
//! No Kubernetes client library is linked (the `kube` crate's build cost is not worth a
//! `scale` call that `kubectl` makes): the output is plain YAML written by a small emitter
//! that quotes every string a YAML 1.1 reader could take for something else. The tests parse
//! each document into the `k8s-openapi` types.
//!
//! Resource sizes use Kubernetes quantity syntax (`4Gi`, `500m`, `1.5`). Workers get requests
//! equal to limits (the Guaranteed QoS class, last to be evicted), and `rask worker
//! --memory-limit` is set below the container's memory limit (90% by default): the worker
//! spills at 60%, pauses at 80% and restarts itself at 95% of its own limit, which must all
//! happen before the kernel's OOM killer acts at the container limit, or the scheduler learns
//! of the loss only from a dropped connection instead of the worker's `Closing` message.

use std::fmt::Write as _;

use base64::Engine as _;
use rask_error::{RaskError, Result};

/// Where the Secret is mounted in every container.
pub const TLS_DIR: &str = "/etc/rask/tls";
/// The client Job's environment: the names `Client::from_env` (`rask::distributed`) reads,
/// so a client program in the Job connects with no configuration of its own.
pub use rask_distributed::client::{
    ENV_SCHEDULER, ENV_TLS_CA_FILE, ENV_TLS_CERT_FILE, ENV_TLS_KEY_FILE, ENV_TOKEN_FILE,
};
/// The user (and group) the containers run as; `deploy/Dockerfile` creates it. Numeric, so
/// that the kubelet can check `runAsNonRoot` without reading the image's `/etc/passwd`.
pub const RUN_AS_USER: i64 = 10001;

/// The Secret's keys, in the order of [`SecretMaterial`]'s fields.
pub const SECRET_KEYS: [&str; 4] = ["ca.pem", "cert.pem", "key.pem", "token"];

/// `imagePullPolicy` of every container.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    /// The default: an image loaded into the nodes by hand (`kind load`, `minikube image
    /// load`) is used as it is; Kubernetes would otherwise default `:latest` to `Always`.
    #[default]
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// What to deploy. [`Default`] gives a two-worker cluster named `rask` from the image
/// `rask:latest` (built from `deploy/Dockerfile`).
#[derive(Clone, Debug)]
pub struct K8sOptions {
    /// Prefix of every object's name (`<name>-scheduler`, `<name>-worker`, ...) and the
    /// `app.kubernetes.io/instance` label. A DNS label starting with a letter (a Service name
    /// must), at most 53 characters so that `<name>-scheduler` fits in 63.
    pub name: String,
    /// `metadata.namespace` of every object; `None` leaves it to `kubectl -n`.
    pub namespace: Option<String>,
    pub image: String,
    pub image_pull_policy: PullPolicy,
    pub scheduler_port: u16,
    pub dashboard_port: u16,
    /// The workers' data port. Fixed rather than random: each pod has its own address, so
    /// the same port never collides, and a fixed port can be named in network policies.
    pub worker_port: u16,
    /// The scheduler container's CPU and memory (requests and limits), quantities.
    pub scheduler_cpu: String,
    pub scheduler_memory: String,
    /// Worker pods; 0 is allowed (a cluster scaled up later with `kubectl scale`).
    pub worker_replicas: u32,
    /// `rask worker --nthreads`; `None`: the CPU limit rounded up.
    pub worker_nthreads: Option<u32>,
    /// The worker container's CPU (requests and limits), a quantity such as `2` or `1500m`.
    pub worker_cpu: String,
    /// The worker container's memory (requests and limits), a quantity such as `4Gi`.
    pub worker_memory: String,
    /// `rask worker --memory-limit` in bytes; `None`: 90% of `worker_memory`. 0 turns the
    /// worker's own limit off (no spilling, pausing or restarting).
    pub worker_memory_limit_bytes: Option<u64>,
    /// Whether to write the client Job.
    pub client_job: bool,
    /// The client Job's command. The default runs the demo, which proves the image and the
    /// mounted credentials work; a real client is a program that calls
    /// `rask::distributed::Client::from_env()`, which reads [`ENV_SCHEDULER`] and the files
    /// named by the `RASK_TLS_*`/`RASK_TOKEN_FILE` variables.
    pub client_command: Vec<String>,
}

impl Default for K8sOptions {
    fn default() -> Self {
        K8sOptions {
            name: "rask".into(),
            namespace: None,
            image: "rask:latest".into(),
            image_pull_policy: PullPolicy::default(),
            scheduler_port: 8786,
            dashboard_port: 8787,
            worker_port: 8788,
            scheduler_cpu: "1".into(),
            scheduler_memory: "2Gi".into(),
            worker_replicas: 2,
            worker_nthreads: None,
            worker_cpu: "2".into(),
            worker_memory: "4Gi".into(),
            worker_memory_limit_bytes: None,
            client_job: true,
            client_command: vec!["rask".into(), "demo".into(), "--quick".into()],
        }
    }
}

/// The cluster's credentials, embedded (base64) in the Secret. Its `Debug` hides the key
/// and the token.
#[derive(Clone)]
pub struct SecretMaterial {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub token: String,
}

impl std::fmt::Debug for SecretMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretMaterial")
            .field("ca_pem", &format_args!("{} bytes", self.ca_pem.len()))
            .field("cert_pem", &format_args!("{} bytes", self.cert_pem.len()))
            .field("key_pem", &"<hidden>")
            .field("token", &"<hidden>")
            .finish()
    }
}

impl SecretMaterial {
    /// A fresh CA, a cluster certificate signed by it, its key, and a random token.
    pub fn generate() -> Result<Self> {
        let creds = rask_distributed::tls::Credentials::generate()?;
        Ok(SecretMaterial {
            ca_pem: creds.ca_pem,
            cert_pem: creds.cert_pem,
            key_pem: creds.key_pem,
            token: rask_distributed::tls::generate_token(),
        })
    }

    fn values(&self) -> [&str; 4] {
        [&self.ca_pem, &self.cert_pem, &self.key_pem, &self.token]
    }
}

/// One generated object.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// `Secret`, `Deployment`, `Service` or `Job`.
    pub kind: &'static str,
    pub name: String,
    /// The YAML document, without a `---` separator.
    pub yaml: String,
}

impl K8sOptions {
    /// Checks every option; [`manifests`] calls it first.
    pub fn validate(&self) -> Result<()> {
        check_name("name", &self.name, 63 - "-scheduler".len(), true)?;
        if let Some(ns) = &self.namespace {
            check_name("namespace", ns, 63, false)?;
        }
        if self.image.is_empty() || self.image.chars().any(|c| c.is_whitespace()) {
            return Err(RaskError::invalid_argument(
                "image",
                format!("`{}` is not an image reference", self.image),
            ));
        }
        let ports = [
            ("scheduler_port", self.scheduler_port),
            ("dashboard_port", self.dashboard_port),
            ("worker_port", self.worker_port),
        ];
        for (i, (name, port)) in ports.iter().enumerate() {
            if *port == 0 {
                return Err(RaskError::invalid_argument(
                    *name,
                    "must be a fixed port, not 0 (a random one)",
                ));
            }
            if let Some((other, _)) = ports[..i].iter().find(|(_, p)| p == port) {
                return Err(RaskError::invalid_argument(
                    *name,
                    format!("port {port} is also {other}"),
                ));
            }
        }
        positive_millis("scheduler_cpu", &self.scheduler_cpu)?;
        positive_bytes("scheduler_memory", &self.scheduler_memory)?;
        self.worker_threads()?;
        self.worker_memory_limit()?;
        if self.client_job && self.client_command.is_empty() {
            return Err(RaskError::invalid_argument(
                "client_command",
                "the client Job needs a command (or turn client_job off)",
            ));
        }
        Ok(())
    }

    /// `<name>-scheduler:<port>`: the Service's name, resolved in the pods' namespace.
    pub fn scheduler_address(&self) -> String {
        format!("{}-scheduler:{}", self.name, self.scheduler_port)
    }

    /// `rask worker --nthreads`: the option, or the CPU limit rounded up.
    pub fn worker_threads(&self) -> Result<u32> {
        let millis = positive_millis("worker_cpu", &self.worker_cpu)?;
        match self.worker_nthreads {
            Some(0) => Err(RaskError::invalid_argument(
                "worker_nthreads",
                "a worker needs at least one thread",
            )),
            Some(n) => Ok(n),
            None => Ok(u32::try_from(millis.div_ceil(1000)).unwrap_or(u32::MAX)),
        }
    }

    /// `rask worker --memory-limit` in bytes: the option, or 90% of the container's limit.
    pub fn worker_memory_limit(&self) -> Result<u64> {
        let container = positive_bytes("worker_memory", &self.worker_memory)?;
        match self.worker_memory_limit_bytes {
            Some(n) if n > container => Err(RaskError::invalid_argument(
                "worker_memory_limit_bytes",
                format!(
                    "{n} bytes is more than the container's memory limit `{}` ({container} \
                     bytes): the kernel would kill the worker before it spills or restarts",
                    self.worker_memory
                ),
            )),
            Some(n) => Ok(n),
            None => Ok(container / 10 * 9 + container % 10 * 9 / 10),
        }
    }

    /// The scheduler container's arguments (after the program name `rask`).
    pub fn scheduler_args(&self) -> Vec<String> {
        let mut args = vec![
            "scheduler".to_string(),
            "--host".into(),
            "0.0.0.0".into(),
            "--port".into(),
            self.scheduler_port.to_string(),
            "--dashboard".into(),
            format!("0.0.0.0:{}", self.dashboard_port),
        ];
        args.extend(tls_args());
        args
    }

    /// The worker container's arguments (after the program name `rask`). `$(POD_IP)` and
    /// `$(POD_NAME)` are expanded by Kubernetes from the container's environment.
    pub fn worker_args(&self) -> Result<Vec<String>> {
        let mut args = vec![
            "worker".to_string(),
            self.scheduler_address(),
            "--nthreads".into(),
            self.worker_threads()?.to_string(),
            "--memory-limit".into(),
            self.worker_memory_limit()?.to_string(),
            "--listen".into(),
            format!("0.0.0.0:{}", self.worker_port),
            "--contact-host".into(),
            "$(POD_IP)".into(),
            "--name".into(),
            "$(POD_NAME)".into(),
        ];
        args.extend(tls_args());
        Ok(args)
    }
}

fn tls_args() -> Vec<String> {
    [
        ("--tls-ca-file", "ca.pem"),
        ("--tls-cert-file", "cert.pem"),
        ("--tls-key-file", "key.pem"),
        ("--token-file", "token"),
    ]
    .iter()
    .flat_map(|(flag, file)| [flag.to_string(), format!("{TLS_DIR}/{file}")])
    .collect()
}

/// A DNS-1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`), starting with a letter when
/// `letter_first` (DNS-1035, what a Service name must be), at most `max` characters.
fn check_name(option: &str, value: &str, max: usize, letter_first: bool) -> Result<()> {
    let bad = |why: &str| {
        RaskError::invalid_argument(
            option,
            format!("`{value}` is not a valid Kubernetes name: {why}"),
        )
    };
    if value.is_empty() {
        return Err(bad("it is empty"));
    }
    if value.len() > max {
        return Err(bad(&format!("it is longer than {max} characters")));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(bad(&format!(
            "`{c}` is not a lowercase letter, digit or `-`"
        )));
    }
    let first = value.as_bytes()[0];
    if letter_first && !first.is_ascii_lowercase() {
        return Err(bad("it must start with a lowercase letter"));
    }
    if first == b'-' || value.ends_with('-') {
        return Err(bad("it must start and end with a letter or digit"));
    }
    Ok(())
}

fn positive_bytes(option: &str, value: &str) -> Result<u64> {
    match parse_memory_quantity(option, value)? {
        0 => Err(RaskError::invalid_argument(
            option,
            format!("`{value}` is zero"),
        )),
        n => Ok(n),
    }
}

fn positive_millis(option: &str, value: &str) -> Result<u64> {
    match parse_cpu_quantity(option, value)? {
        0 => Err(RaskError::invalid_argument(
            option,
            format!("`{value}` is zero"),
        )),
        n => Ok(n),
    }
}

/// A memory quantity (`4Gi`, `512Mi`, `1G`, `1.5Gi`, `129e6`) in bytes, rounded up as
/// Kubernetes rounds. The error names `option`.
pub fn parse_memory_quantity(option: &str, value: &str) -> Result<u64> {
    let (num, den) = parse_quantity(value)
        .map_err(|why| RaskError::invalid_argument(option, format!("`{value}` {why}")))?;
    u64::try_from(num.div_ceil(den))
        .map_err(|_| RaskError::invalid_argument(option, format!("`{value}` is too large")))
}

/// A CPU quantity (`2`, `500m`, `1.5`) in millicores, rounded up. The error names `option`.
pub fn parse_cpu_quantity(option: &str, value: &str) -> Result<u64> {
    let (num, den) = parse_quantity(value)
        .map_err(|why| RaskError::invalid_argument(option, format!("`{value}` {why}")))?;
    num.checked_mul(1000)
        .and_then(|n| u64::try_from(n.div_ceil(den)).ok())
        .ok_or_else(|| RaskError::invalid_argument(option, format!("`{value}` is too large")))
}

/// Kubernetes' quantity grammar (`resource.Quantity`): a non-negative decimal number, then a
/// binary suffix (`Ki` .. `Ei`), a decimal one (`n`, `u`, `m`, none, `k`, `M` .. `E`) or an
/// exponent (`e3`, `E-2`). Exactly, as the fraction `num / den`. `K` is refused as the API
/// server refuses it (the kilo suffix is `k`).
fn parse_quantity(s: &str) -> std::result::Result<(u128, u128), String> {
    const SYNTAX: &str = "is not a Kubernetes quantity (examples: 4Gi, 512Mi, 1G, 2, 500m)";
    let body = s.strip_prefix('+').unwrap_or(s);
    if body.starts_with('-') {
        return Err("is negative".into());
    }
    let number_len = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(number_len);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() || frac.contains('.') {
        return Err(SYNTAX.into());
    }
    let digits = format!("{int}{frac}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 30 {
        return Err("has too many digits".into());
    }
    let mut num: u128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| SYNTAX.to_string())?
    };
    let mut den: u128 = 10u128.pow(frac.len() as u32);
    let binary = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    let decimal = ["k", "M", "G", "T", "P", "E"];
    let exp10: i32 = if suffix.is_empty() {
        0
    } else if let Some(i) = binary.iter().position(|b| *b == suffix) {
        num = num
            .checked_mul(1u128 << (10 * (i + 1)))
            .ok_or("is too large")?;
        0
    } else if let Some(i) = decimal.iter().position(|d| *d == suffix) {
        3 * (i as i32 + 1)
    } else {
        match suffix {
            "m" => -3,
            "u" => -6,
            "n" => -9,
            "K" => return Err("has the suffix `K`, which Kubernetes spells `k`".into()),
            _ => {
                let exp = suffix
                    .strip_prefix(['e', 'E'])
                    .ok_or_else(|| SYNTAX.to_string())?;
                let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(SYNTAX.into());
                }
                match exp.parse::<i32>() {
                    Ok(e) if e.abs() <= 30 => e,
                    _ => return Err("has an exponent out of range".into()),
                }
            }
        }
    };
    let scale = 10u128.pow(exp10.unsigned_abs());
    if exp10 >= 0 {
        num = num.checked_mul(scale).ok_or("is too large")?;
    } else {
        den = den.checked_mul(scale).ok_or("has too many decimals")?;
    }
    Ok((num, den))
}

/// Every object as its own YAML document: Secret, scheduler Deployment, Service, worker
/// Deployment, client Job (if asked for).
pub fn manifest_documents(opts: &K8sOptions, creds: &SecretMaterial) -> Result<Vec<Manifest>> {
    opts.validate()?;
    let mut docs = vec![
        secret(opts, creds),
        scheduler_deployment(opts),
        scheduler_service(opts),
        worker_deployment(opts)?,
    ];
    if opts.client_job {
        docs.push(client_job(opts));
    }
    Ok(docs
        .into_iter()
        .map(|(kind, name, node)| {
            let mut yaml = String::new();
            write_node(&mut yaml, &node, 0);
            Manifest { kind, name, yaml }
        })
        .collect())
}

/// All of [`manifest_documents`] as one file for `kubectl apply -f`, documents separated by
/// `---`, after a comment saying that it holds the private key.
pub fn manifests(opts: &K8sOptions, creds: &SecretMaterial) -> Result<String> {
    let docs = manifest_documents(opts, creds)?;
    let mut out = String::from(
        "# Generated by `rask k8s manifests`. The Secret below holds the cluster's private key\n\
         # and token: keep this file private, and out of version control.\n",
    );
    for doc in docs {
        out.push_str("---\n");
        out.push_str(&doc.yaml);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// The objects.

type Doc = (&'static str, String, Node);

fn secret_name(opts: &K8sOptions) -> String {
    format!("{}-tls", opts.name)
}

fn labels(opts: &K8sOptions, component: &str) -> Node {
    map([
        ("app.kubernetes.io/name", s("rask")),
        ("app.kubernetes.io/instance", s(&opts.name)),
        ("app.kubernetes.io/component", s(component)),
    ])
}

fn metadata(opts: &K8sOptions, name: &str, component: &str) -> Node {
    let mut m = vec![("name".to_string(), s(name))];
    if let Some(ns) = &opts.namespace {
        m.push(("namespace".into(), s(ns)));
    }
    m.push(("labels".into(), labels(opts, component)));
    Node::Map(m)
}

fn secret(opts: &K8sOptions, creds: &SecretMaterial) -> Doc {
    let b64 = base64::engine::general_purpose::STANDARD;
    let data = Node::Map(
        SECRET_KEYS
            .iter()
            .zip(creds.values())
            .map(|(k, v)| (k.to_string(), s(&b64.encode(v))))
            .collect(),
    );
    let name = secret_name(opts);
    let node = map([
        ("apiVersion", s("v1")),
        ("kind", s("Secret")),
        ("metadata", metadata(opts, &name, "credentials")),
        ("type", s("Opaque")),
        ("data", data),
    ]);
    ("Secret", name, node)
}

fn env_from_field(name: &str, path: &str) -> Node {
    map([
        ("name", s(name)),
        (
            "valueFrom",
            map([("fieldRef", map([("fieldPath", s(path))]))]),
        ),
    ])
}

fn env_value(name: &str, value: &str) -> Node {
    map([("name", s(name)), ("value", s(value))])
}

fn port(name: &str, number: u16) -> Node {
    map([
        ("name", s(name)),
        ("containerPort", Node::Int(number.into())),
        ("protocol", s("TCP")),
    ])
}

fn resources(cpu: &str, memory: &str) -> Node {
    let both = || map([("cpu", s(cpu)), ("memory", s(memory))]);
    map([("requests", both()), ("limits", both())])
}

fn tls_volume(opts: &K8sOptions) -> Node {
    map([
        ("name", s("tls")),
        (
            "secret",
            map([
                ("secretName", s(&secret_name(opts))),
                // 0400: only the owner reads the key; with the pod's fsGroup the kubelet
                // makes the files group-readable for that group, which the container's
                // user is in.
                ("defaultMode", Node::Int(0o400)),
            ]),
        ),
    ])
}

fn tls_mount() -> Node {
    map([
        ("name", s("tls")),
        ("mountPath", s(TLS_DIR)),
        ("readOnly", Node::Bool(true)),
    ])
}

/// A writable `/tmp`: the root filesystem is read-only.
fn tmp_mount() -> Node {
    map([("name", s("tmp")), ("mountPath", s("/tmp"))])
}

/// On the node's disk, not `medium: Memory`, which would count against the memory limit.
fn tmp_volume() -> Node {
    map([("name", s("tmp")), ("emptyDir", Node::Map(Vec::new()))])
}

fn container_security() -> Node {
    map([
        ("allowPrivilegeEscalation", Node::Bool(false)),
        ("readOnlyRootFilesystem", Node::Bool(true)),
        ("capabilities", map([("drop", Node::Seq(vec![s("ALL")]))])),
    ])
}

fn pod_security() -> Node {
    map([
        ("runAsNonRoot", Node::Bool(true)),
        ("runAsUser", Node::Int(RUN_AS_USER)),
        ("runAsGroup", Node::Int(RUN_AS_USER)),
        ("fsGroup", Node::Int(RUN_AS_USER)),
        ("seccompProfile", map([("type", s("RuntimeDefault"))])),
    ])
}

fn strings(items: &[String]) -> Node {
    Node::Seq(items.iter().map(|a| s(a)).collect())
}

fn tcp_probe(port: u16, initial: i64, period: i64) -> Node {
    map([
        ("tcpSocket", map([("port", Node::Int(port.into()))])),
        ("initialDelaySeconds", Node::Int(initial)),
        ("periodSeconds", Node::Int(period)),
        ("timeoutSeconds", Node::Int(2)),
        ("failureThreshold", Node::Int(3)),
    ])
}

fn selector_labels(opts: &K8sOptions, component: &str) -> Node {
    map([
        ("app.kubernetes.io/instance", s(&opts.name)),
        ("app.kubernetes.io/component", s(component)),
    ])
}

fn deployment(
    opts: &K8sOptions,
    name: &str,
    component: &str,
    replicas: u32,
    strategy: &str,
    pod_spec: Node,
) -> Node {
    map([
        ("apiVersion", s("apps/v1")),
        ("kind", s("Deployment")),
        ("metadata", metadata(opts, name, component)),
        (
            "spec",
            map([
                ("replicas", Node::Int(replicas.into())),
                ("strategy", map([("type", s(strategy))])),
                (
                    "selector",
                    map([("matchLabels", selector_labels(opts, component))]),
                ),
                (
                    "template",
                    map([
                        ("metadata", map([("labels", labels(opts, component))])),
                        ("spec", pod_spec),
                    ]),
                ),
            ]),
        ),
    ])
}

fn scheduler_deployment(opts: &K8sOptions) -> Doc {
    let name = format!("{}-scheduler", opts.name);
    let container = map([
        ("name", s("scheduler")),
        ("image", s(&opts.image)),
        ("imagePullPolicy", s(opts.image_pull_policy.as_str())),
        ("command", strings(&["rask".into()])),
        ("args", strings(&opts.scheduler_args())),
        (
            "ports",
            Node::Seq(vec![
                port("scheduler", opts.scheduler_port),
                port("dashboard", opts.dashboard_port),
            ]),
        ),
        // Ready once the port accepts connections; restarted if it stops accepting. Each
        // probe is a connection that closes without a handshake, which the scheduler logs:
        // the periods are long enough to keep that quiet.
        ("readinessProbe", tcp_probe(opts.scheduler_port, 1, 10)),
        ("livenessProbe", tcp_probe(opts.scheduler_port, 15, 30)),
        (
            "resources",
            resources(&opts.scheduler_cpu, &opts.scheduler_memory),
        ),
        ("volumeMounts", Node::Seq(vec![tls_mount(), tmp_mount()])),
        ("securityContext", container_security()),
    ]);
    let pod = map([
        ("securityContext", pod_security()),
        ("containers", Node::Seq(vec![container])),
        ("volumes", Node::Seq(vec![tls_volume(opts), tmp_volume()])),
    ]);
    let node = deployment(opts, &name, "scheduler", 1, "Recreate", pod);
    ("Deployment", name, node)
}

fn scheduler_service(opts: &K8sOptions) -> Doc {
    let name = format!("{}-scheduler", opts.name);
    let svc_port = |pname: &str, number: u16| {
        map([
            ("name", s(pname)),
            ("port", Node::Int(number.into())),
            ("targetPort", s(pname)),
            ("protocol", s("TCP")),
        ])
    };
    let node = map([
        ("apiVersion", s("v1")),
        ("kind", s("Service")),
        ("metadata", metadata(opts, &name, "scheduler")),
        (
            "spec",
            map([
                ("type", s("ClusterIP")),
                ("selector", selector_labels(opts, "scheduler")),
                (
                    "ports",
                    Node::Seq(vec![
                        svc_port("scheduler", opts.scheduler_port),
                        svc_port("dashboard", opts.dashboard_port),
                    ]),
                ),
            ]),
        ),
    ]);
    ("Service", name, node)
}

fn worker_deployment(opts: &K8sOptions) -> Result<Doc> {
    let name = format!("{}-worker", opts.name);
    // No probes: the worker exits when it cannot reach the scheduler for its reconnect
    // window, and restarts itself (exits) above 95% of its memory limit, so the kubelet
    // already sees every failure a probe would; a TCP probe on the data port would succeed
    // even for a hung process, the kernel completing the handshake on a listening socket.
    let container = map([
        ("name", s("worker")),
        ("image", s(&opts.image)),
        ("imagePullPolicy", s(opts.image_pull_policy.as_str())),
        ("command", strings(&["rask".into()])),
        ("args", strings(&opts.worker_args()?)),
        (
            "env",
            Node::Seq(vec![
                env_from_field("POD_IP", "status.podIP"),
                env_from_field("POD_NAME", "metadata.name"),
                // As LocalCluster sets for its workers (Dask's nanny does the same): without
                // a fixed trim threshold glibc keeps memory freed by spilling, and the worker
                // looks full and restarts.
                env_value("MALLOC_TRIM_THRESHOLD_", "65536"),
            ]),
        ),
        ("ports", Node::Seq(vec![port("data", opts.worker_port)])),
        (
            "resources",
            resources(&opts.worker_cpu, &opts.worker_memory),
        ),
        (
            "volumeMounts",
            Node::Seq(vec![
                tls_mount(),
                // Spilled values go to the temporary directory (the node's disk).
                tmp_mount(),
            ]),
        ),
        ("securityContext", container_security()),
    ]);
    let pod = map([
        ("securityContext", pod_security()),
        ("containers", Node::Seq(vec![container])),
        ("volumes", Node::Seq(vec![tls_volume(opts), tmp_volume()])),
    ]);
    let node = deployment(
        opts,
        &name,
        "worker",
        opts.worker_replicas,
        "RollingUpdate",
        pod,
    );
    Ok(("Deployment", name, node))
}

fn client_job(opts: &K8sOptions) -> Doc {
    let name = format!("{}-client", opts.name);
    let file = |f: &str| format!("{TLS_DIR}/{f}");
    let container = map([
        ("name", s("client")),
        ("image", s(&opts.image)),
        ("imagePullPolicy", s(opts.image_pull_policy.as_str())),
        ("command", strings(&opts.client_command)),
        (
            "env",
            Node::Seq(vec![
                env_value(ENV_SCHEDULER, &opts.scheduler_address()),
                env_value(ENV_TLS_CA_FILE, &file("ca.pem")),
                env_value(ENV_TLS_CERT_FILE, &file("cert.pem")),
                env_value(ENV_TLS_KEY_FILE, &file("key.pem")),
                env_value(ENV_TOKEN_FILE, &file("token")),
            ]),
        ),
        ("volumeMounts", Node::Seq(vec![tls_mount(), tmp_mount()])),
        ("securityContext", container_security()),
    ]);
    let node = map([
        ("apiVersion", s("batch/v1")),
        ("kind", s("Job")),
        ("metadata", metadata(opts, &name, "client")),
        (
            "spec",
            map([
                // A few retries: the Job starts with the scheduler and may try to connect
                // before it is ready; more would only repeat a client's own failure.
                ("backoffLimit", Node::Int(3)),
                (
                    "template",
                    map([
                        ("metadata", map([("labels", labels(opts, "client"))])),
                        (
                            "spec",
                            map([
                                ("restartPolicy", s("Never")),
                                ("securityContext", pod_security()),
                                ("containers", Node::Seq(vec![container])),
                                ("volumes", Node::Seq(vec![tls_volume(opts), tmp_volume()])),
                            ]),
                        ),
                    ]),
                ),
            ]),
        ),
    ]);
    ("Job", name, node)
}

// ---------------------------------------------------------------------------------------
// A small YAML emitter: block style, keys in the order given.

enum Node {
    Str(String),
    Int(i64),
    Bool(bool),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

fn s(v: &str) -> Node {
    Node::Str(v.to_string())
}

fn map<const N: usize>(entries: [(&str, Node); N]) -> Node {
    Node::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

/// Writes `node` as the value of a key or sequence item at `indent` spaces; the caller has
/// written the key (`key:`) or `-` already, without a trailing space.
fn write_node(out: &mut String, node: &Node, indent: usize) {
    match node {
        Node::Map(entries) if !entries.is_empty() => {
            for (k, v) in entries {
                out.push_str(&" ".repeat(indent));
                write_scalar(out, k);
                out.push(':');
                write_value(out, v, indent);
            }
        }
        Node::Seq(items) if !items.is_empty() => {
            for item in items {
                out.push_str(&" ".repeat(indent));
                out.push('-');
                match item {
                    // The first key on the `-` line, the others aligned under it.
                    Node::Map(entries) if !entries.is_empty() => {
                        for (i, (k, v)) in entries.iter().enumerate() {
                            if i == 0 {
                                out.push(' ');
                            } else {
                                out.push_str(&" ".repeat(indent + 2));
                            }
                            write_scalar(out, k);
                            out.push(':');
                            write_value(out, v, indent + 2);
                        }
                    }
                    _ => write_value(out, item, indent),
                }
            }
        }
        _ => {
            // A scalar or an empty collection at the top level: not produced, kept whole.
            write_value(out, node, indent);
        }
    }
}

/// Writes what follows `key:` or `-`: a scalar on the same line, a collection on the next
/// lines, indented one level deeper.
fn write_value(out: &mut String, node: &Node, indent: usize) {
    match node {
        Node::Str(v) => {
            out.push(' ');
            write_scalar(out, v);
            out.push('\n');
        }
        Node::Int(n) => {
            let _ = writeln!(out, " {n}");
        }
        Node::Bool(b) => {
            let _ = writeln!(out, " {b}");
        }
        Node::Map(e) if e.is_empty() => out.push_str(" {}\n"),
        Node::Seq(e) if e.is_empty() => out.push_str(" []\n"),
        Node::Map(_) | Node::Seq(_) => {
            out.push('\n');
            write_node(out, node, indent + 2);
        }
    }
}

/// A string as a plain scalar when no YAML reader (1.1 or 1.2) could read it as anything
/// else, double-quoted with escapes otherwise.
fn write_scalar(out: &mut String, v: &str) {
    if is_plain_safe(v) {
        out.push_str(v);
        return;
    }
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn is_plain_safe(v: &str) -> bool {
    const WORDS: [&str; 11] = [
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "nan", "inf",
    ];
    let b = v.as_bytes();
    let allowed =
        |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'/' | b':');
    // Digits, dots and signs start numbers of some YAML flavour (`1e3`, `0o17`, `.5`, `12:30`,
    // `-1`); `:` and a lone `-` are indicators; `---` ends a document.
    let starts_ok = match b.first() {
        Some(c) if c.is_ascii_alphabetic() || matches!(c, b'_' | b'/') => true,
        Some(b'-') => match b.get(1) {
            Some(c) if c.is_ascii_alphabetic() => true,
            Some(b'-') => b.get(2).is_some_and(u8::is_ascii_alphabetic),
            _ => false,
        },
        _ => false,
    };
    starts_ok
        && b.iter().copied().all(allowed)
        && !v.ends_with(':')
        && !WORDS.iter().any(|w| w.eq_ignore_ascii_case(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(q: &str) -> std::result::Result<u64, String> {
        parse_memory_quantity("m", q).map_err(|e| e.to_string())
    }

    fn millis(q: &str) -> std::result::Result<u64, String> {
        parse_cpu_quantity("c", q).map_err(|e| e.to_string())
    }

    #[test]
    fn memory_quantities() {
        assert_eq!(bytes("4Gi").unwrap(), 4 << 30);
        assert_eq!(bytes("512Mi").unwrap(), 512 << 20);
        assert_eq!(bytes("1Ki").unwrap(), 1024);
        assert_eq!(bytes("1Ei").unwrap(), 1 << 60);
        assert_eq!(bytes("1G").unwrap(), 1_000_000_000);
        assert_eq!(bytes("1k").unwrap(), 1000);
        assert_eq!(bytes("1.5Gi").unwrap(), 3 << 29);
        assert_eq!(bytes("129e6").unwrap(), 129_000_000);
        assert_eq!(bytes("129E6").unwrap(), 129_000_000);
        assert_eq!(bytes("1e-1").unwrap(), 1, "rounded up");
        assert_eq!(bytes("1500m").unwrap(), 2, "rounded up");
        assert_eq!(bytes("123").unwrap(), 123);
        assert_eq!(bytes("+5M").unwrap(), 5_000_000);
        assert_eq!(bytes("0.5").unwrap(), 1);
        assert_eq!(bytes(".5Ki").unwrap(), 512);
        assert_eq!(bytes("5.Ki").unwrap(), 5120);
        assert_eq!(bytes("0").unwrap(), 0);
        assert_eq!(bytes("007Mi").unwrap(), 7 << 20);
    }

    #[test]
    fn bad_memory_quantities() {
        for (q, why) in [
            ("4 gigs", "not a Kubernetes quantity"),
            ("", "not a Kubernetes quantity"),
            ("Gi", "not a Kubernetes quantity"),
            (".", "not a Kubernetes quantity"),
            ("1.2.3", "not a Kubernetes quantity"),
            ("4GB", "not a Kubernetes quantity"),
            ("4gi", "not a Kubernetes quantity"),
            ("4K", "Kubernetes spells `k`"),
            ("-1Gi", "negative"),
            ("1e", "not a Kubernetes quantity"),
            ("1e+", "not a Kubernetes quantity"),
            ("1e99", "exponent out of range"),
            ("20Ei", "too large"),
            ("1234567890123456789012345678901", "too many digits"),
        ] {
            let e = bytes(q).unwrap_err();
            assert!(e.contains(why), "{q:?}: {e}");
            assert!(e.contains(&format!("`{q}`")), "{q:?}: {e}");
            assert!(e.contains("`m`"), "names the option: {e}");
        }
    }

    #[test]
    fn cpu_quantities() {
        assert_eq!(millis("2").unwrap(), 2000);
        assert_eq!(millis("500m").unwrap(), 500);
        assert_eq!(millis("1.5").unwrap(), 1500);
        assert_eq!(millis("0.0001").unwrap(), 1, "rounded up");
        assert_eq!(millis("100u").unwrap(), 1);
        assert!(millis("two").unwrap_err().contains("`c`"));
    }

    #[test]
    fn derived_worker_settings() {
        let mut o = K8sOptions {
            worker_cpu: "1500m".into(),
            worker_memory: "10".into(),
            ..Default::default()
        };
        assert_eq!(o.worker_threads().unwrap(), 2);
        assert_eq!(o.worker_memory_limit().unwrap(), 9);
        o.worker_memory = "4Gi".into();
        assert_eq!(o.worker_memory_limit().unwrap(), (4u64 << 30) * 9 / 10);
        // No overflow on the way to 90% (15 Ei times 9 is past u64::MAX).
        o.worker_memory = "15Ei".into();
        assert_eq!(
            o.worker_memory_limit().unwrap(),
            ((15u128 << 60) * 9 / 10) as u64
        );
        o.worker_nthreads = Some(7);
        assert_eq!(o.worker_threads().unwrap(), 7);
    }

    #[test]
    fn scalars_are_quoted_when_needed() {
        let q = |v: &str| {
            let mut o = String::new();
            write_scalar(&mut o, v);
            o
        };
        for plain in [
            "rask",
            "rask:latest",
            "apps/v1",
            "app.kubernetes.io/name",
            "--port",
            "--tls-ca-file",
            "/etc/rask/tls/ca.pem",
            "rask-scheduler:8786",
            "ca.pem",
        ] {
            assert_eq!(q(plain), plain);
        }
        for (v, quoted) in [
            ("8786", "\"8786\""),
            ("2", "\"2\""),
            ("4Gi", "\"4Gi\""),
            ("0.0.0.0:8787", "\"0.0.0.0:8787\""),
            ("yes", "\"yes\""),
            ("NO", "\"NO\""),
            ("null", "\"null\""),
            ("~", "\"~\""),
            ("", "\"\""),
            ("-1", "\"-1\""),
            ("---", "\"---\""),
            ("a: b", "\"a: b\""),
            ("x #y", "\"x #y\""),
            ("$(POD_IP)", "\"$(POD_IP)\""),
            ("say \"hi\"\n", "\"say \\\"hi\\\"\\n\""),
            ("a\\b", "\"a\\\\b\""),
            ("bell\u{7}", "\"bell\\u0007\""),
            ("key:", "\"key:\""),
        ] {
            assert_eq!(q(v), quoted, "{v:?}");
        }
    }

    #[test]
    fn block_layout() {
        let node = map([
            ("a", s("x")),
            (
                "list",
                Node::Seq(vec![
                    map([("k", Node::Int(1)), ("m", map([("z", Node::Bool(true))]))]),
                    s("plain"),
                    Node::Seq(vec![s("inner")]),
                ]),
            ),
            ("empty", Node::Map(Vec::new())),
            ("none", Node::Seq(Vec::new())),
        ]);
        let mut out = String::new();
        write_node(&mut out, &node, 0);
        assert_eq!(
            out,
            "a: x\nlist:\n  - k: 1\n    m:\n      z: true\n  - plain\n  -\n    - inner\nempty: {}\nnone: []\n"
        );
    }

    #[test]
    fn secret_material_debug_hides_the_key() {
        let m = SecretMaterial {
            ca_pem: "CA".into(),
            cert_pem: "CERT".into(),
            key_pem: "PRIVATE".into(),
            token: "TOKEN".into(),
        };
        let d = format!("{m:?}");
        assert!(!d.contains("PRIVATE") && !d.contains("TOKEN"), "{d}");
    }
}
