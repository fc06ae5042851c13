//! `rask k8s manifests`: the Kubernetes objects of a cluster, with fresh credentials.
//!
//! The manifests come from `rask::deploy::k8s` (see `docs/deploy.md`); this command only
//! maps flags onto its options, makes a new CA, certificate, key and token for the Secret,
//! and writes the file. The file holds that private key, so it is created mode 0600 and the
//! command says so on standard error.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use rask::deploy::k8s::{self, K8sOptions, PullPolicy, SecretMaterial};

#[derive(Subcommand)]
pub enum K8sCommand {
    /// Write the Secret (fresh certificates and token), the scheduler Deployment and
    /// Service, the worker Deployment and a client Job, for `kubectl apply -f`.
    Manifests(ManifestsArgs),
}

#[derive(Args)]
pub struct ManifestsArgs {
    /// Prefix of every object's name (`<name>-scheduler`, `<name>-worker`, ...).
    #[arg(long, default_value_t = K8sOptions::default().name)]
    name: String,
    /// Namespace of every object (default: none written, so `kubectl -n` decides).
    #[arg(long)]
    namespace: Option<String>,
    /// Container image with the `rask` binary (built from deploy/Dockerfile).
    #[arg(long, default_value_t = K8sOptions::default().image)]
    image: String,
    #[arg(long, value_enum, default_value_t = PullArg::IfNotPresent)]
    image_pull_policy: PullArg,
    /// Worker pods (0 is allowed: scale later with `kubectl scale`).
    #[arg(long, default_value_t = K8sOptions::default().worker_replicas)]
    workers: u32,
    /// CPU of each worker container, requests and limits (`2`, `1500m`).
    #[arg(long, default_value_t = K8sOptions::default().worker_cpu)]
    worker_cpu: String,
    /// Memory of each worker container, requests and limits (`4Gi`, `512Mi`).
    #[arg(long, default_value_t = K8sOptions::default().worker_memory)]
    worker_memory: String,
    /// Threads per worker (default: the worker's CPU rounded up).
    #[arg(long)]
    nthreads: Option<u32>,
    /// The workers' own memory limit (`rask worker --memory-limit`: bytes or `3GiB`);
    /// default 90% of --worker-memory, so the worker spills and restarts itself before the
    /// kernel kills it at the container's limit.
    #[arg(long, value_parser = crate::parse_bytes)]
    memory_limit: Option<u64>,
    /// CPU of the scheduler container.
    #[arg(long, default_value_t = K8sOptions::default().scheduler_cpu)]
    scheduler_cpu: String,
    /// Memory of the scheduler container.
    #[arg(long, default_value_t = K8sOptions::default().scheduler_memory)]
    scheduler_memory: String,
    /// Leave out the client Job.
    #[arg(long)]
    no_client_job: bool,
    /// Write here (created mode 0600); `-` for standard output.
    #[arg(long, short, default_value = "-")]
    output: PathBuf,
    /// The client Job's command, after `--` (default: `rask demo --quick`).
    #[arg(last = true)]
    client_command: Vec<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum PullArg {
    Always,
    IfNotPresent,
    Never,
}

impl ManifestsArgs {
    fn options(&self) -> K8sOptions {
        let mut o = K8sOptions {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            image: self.image.clone(),
            image_pull_policy: match self.image_pull_policy {
                PullArg::Always => PullPolicy::Always,
                PullArg::IfNotPresent => PullPolicy::IfNotPresent,
                PullArg::Never => PullPolicy::Never,
            },
            worker_replicas: self.workers,
            worker_cpu: self.worker_cpu.clone(),
            worker_memory: self.worker_memory.clone(),
            worker_nthreads: self.nthreads,
            worker_memory_limit_bytes: self.memory_limit,
            scheduler_cpu: self.scheduler_cpu.clone(),
            scheduler_memory: self.scheduler_memory.clone(),
            client_job: !self.no_client_job,
            ..Default::default()
        };
        if !self.client_command.is_empty() {
            o.client_command = self.client_command.clone();
        }
        o
    }
}

pub fn run(cmd: K8sCommand) -> anyhow::Result<()> {
    match cmd {
        K8sCommand::Manifests(args) => manifests(&args),
    }
}

fn manifests(args: &ManifestsArgs) -> anyhow::Result<()> {
    let opts = args.options();
    // Options first: no key is made for manifests that cannot be written.
    opts.validate()?;
    let creds = SecretMaterial::generate().context("generating the cluster's credentials")?;
    let text = k8s::manifests(&opts, &creds)?;
    let secret = format!("{}-tls", opts.name);
    if args.output.as_os_str() == "-" {
        std::io::stdout()
            .write_all(text.as_bytes())
            .context("writing the manifests to standard output")?;
        eprintln!(
            "note: the output holds the cluster's private key and token (Secret {secret}); \
             keep it private"
        );
    } else {
        write_private(&args.output, &text)?;
        eprintln!(
            "wrote {}: it holds the cluster's private key and token (Secret {secret}), so it \
             is readable by you only; apply it with `kubectl apply -f {}`",
            args.output.display(),
            args.output.display()
        );
    }
    Ok(())
}

/// Writes `text` to `path`, mode 0600 also when the file was already there with a wider
/// mode (an open does not change an existing file's mode).
fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("making {} private", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::{Cli, Command};

    fn parse(args: &[String]) -> Cli {
        let argv = std::iter::once("rask".to_string()).chain(args.iter().cloned());
        Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// The containers' arguments are parsed by this binary's own command line: a renamed
    /// or removed flag fails here, not in a pod.
    #[test]
    fn manifest_arguments_parse_as_rask_commands() {
        let opts = K8sOptions::default();
        match parse(&opts.scheduler_args()).command {
            Command::Scheduler {
                host,
                port,
                dashboard,
                security,
                ..
            } => {
                assert_eq!(host, "0.0.0.0");
                assert_eq!(port, opts.scheduler_port);
                assert_eq!(dashboard.as_deref(), Some("0.0.0.0:8787"));
                let tls = std::path::Path::new(k8s::TLS_DIR);
                assert_eq!(security.tls_ca_file, Some(tls.join("ca.pem")));
                assert_eq!(security.tls_cert_file, Some(tls.join("cert.pem")));
                assert_eq!(security.tls_key_file, Some(tls.join("key.pem")));
                assert_eq!(security.token_file, Some(tls.join("token")));
                assert!(!security.insecure);
            }
            _ => panic!("not a scheduler command"),
        }
        match parse(&opts.worker_args().unwrap()).command {
            Command::Worker {
                address,
                nthreads,
                memory_limit,
                listen,
                contact_host,
                name,
                security,
                ..
            } => {
                assert_eq!(address.as_deref(), Some("rask-scheduler:8786"));
                assert_eq!(nthreads, Some(2));
                assert_eq!(memory_limit, opts.worker_memory_limit().unwrap());
                assert_eq!(listen, "0.0.0.0:8788");
                assert_eq!(contact_host.as_deref(), Some("$(POD_IP)"));
                assert_eq!(name.as_deref(), Some("$(POD_NAME)"));
                assert!(security.tls_key_file.is_some() && security.token_file.is_some());
            }
            _ => panic!("not a worker command"),
        }
        // The client Job's default command too.
        assert!(matches!(
            parse(&opts.client_command[1..]).command,
            Command::Demo { quick: true, .. }
        ));
    }

    #[test]
    fn flags_reach_the_options() {
        let cli = parse(
            &[
                "k8s",
                "manifests",
                "--name",
                "big",
                "--namespace",
                "science",
                "--workers",
                "7",
                "--worker-cpu",
                "500m",
                "--worker-memory",
                "1Gi",
                "--memory-limit",
                "512MiB",
                "--image-pull-policy",
                "never",
                "--",
                "my-client",
                "--flag",
            ]
            .map(String::from),
        );
        let Command::K8s {
            cmd: K8sCommand::Manifests(args),
        } = cli.command
        else {
            panic!("not k8s manifests");
        };
        let o = args.options();
        assert_eq!(o.name, "big");
        assert_eq!(o.namespace.as_deref(), Some("science"));
        assert_eq!(o.worker_replicas, 7);
        assert_eq!(o.worker_threads().unwrap(), 1);
        assert_eq!(o.worker_memory_limit().unwrap(), 512 << 20);
        assert_eq!(o.image_pull_policy, PullPolicy::Never);
        assert_eq!(o.client_command, ["my-client", "--flag"]);
    }

    #[test]
    fn output_file_is_private() {
        let dir = std::env::temp_dir().join(format!("rask-k8s-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cluster.yaml");
        // A file that was there, readable by everyone, ends up private too.
        std::fs::write(&path, "old").unwrap();
        let cli =
            parse(&["k8s", "manifests", "--output", path.to_str().unwrap()].map(String::from));
        let Command::K8s { cmd } = cli.command else {
            panic!("not k8s");
        };
        run(cmd).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("kind: Secret") && text.contains("key.pem:"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
