//! rask-deploy: starting rask clusters through the resource managers users already have.
//!
//! - [`slurm`]: `SlurmCluster` (Dask-jobqueue's `SLURMCluster` shape) submits worker jobs
//!   pointed at a scheduler file on a shared filesystem; `srun` mode runs one program on
//!   every task of an allocation, rank 0 becoming scheduler and client (as dask-mpi does).
//! - [`k8s`]: manifests for a scheduler Deployment and Service, a worker Deployment, the
//!   Secret holding certificates and token, and a client Job.

pub mod k8s;
pub mod slurm;
