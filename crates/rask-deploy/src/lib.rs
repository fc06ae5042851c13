//! rask-deploy: starting rask clusters through the resource managers users already have.
//!
//! # The main types and how they relate
//!
//! Every deployment is the same three roles as `rask scheduler` / `rask worker` / a client
//! (see `rask-distributed`), joined by the one thing they share: the cluster's address, TLS
//! credentials and token. This crate only decides who starts which process, and how that
//! shared thing reaches them.
//!
//! - [`slurm::SlurmCluster`] (Dask-jobqueue's `SLURMCluster` shape) starts a scheduler in this
//!   process and submits worker jobs ([`slurm::SlurmOptions::job_script`]) that read the
//!   scheduler file on a shared filesystem; `scale(jobs)`, `adapt(min, max)` from the
//!   scheduler's load, jobs cancelled on drop. [`slurm::initialize`] is `srun` mode: one
//!   program on every task of an allocation, rank 0 becoming scheduler and client, the rest
//!   workers (as dask-mpi does).
//! - [`k8s::manifests`] writes a scheduler Deployment and Service, a worker Deployment, the
//!   Secret holding [`k8s::SecretMaterial`] (certificates and token) and a client Job, from
//!   [`k8s::K8sOptions`].
//!
//! # Example: Kubernetes manifests for a three-worker cluster
//!
//! ```
//! use rask_deploy::k8s::{K8sOptions, SecretMaterial, manifests};
//!
//! let opts = K8sOptions {
//!     worker_replicas: 3,
//!     worker_memory: "8Gi".into(),
//!     ..Default::default()
//! };
//! // Fresh CA, certificate and token: the Secret the pods mount.
//! let secret = SecretMaterial::generate()?;
//! let yaml = manifests(&opts, &secret)?;
//! assert!(yaml.contains("kind: Deployment") && yaml.contains("replicas: 3"));
//! // A quantity Kubernetes would not take is refused, naming the option.
//! let bad = K8sOptions { worker_memory: "8 gigs".into(), ..Default::default() };
//! assert!(manifests(&bad, &secret).unwrap_err().to_string().contains("worker_memory"));
//! # Ok::<(), rask_error::RaskError>(())
//! ```

pub mod k8s;
pub mod slurm;
