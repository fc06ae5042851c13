//! `rask slurm script` and `rask slurm submit`: rask workers as SLURM jobs.
//!
//! Both map flags onto `rask::deploy::slurm::SlurmOptions` (see `docs/deploy.md`). The jobs
//! run this `rask` binary's `worker --scheduler-file ...` (built-in ops only; programs with
//! their own `#[delayed]` functions use `SlurmCluster` from Rust, whose jobs run the program
//! itself). `submit` runs the scheduler here until Ctrl-C, then cancels every job it
//! submitted and waits until `squeue` no longer lists them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use rask::deploy::slurm::{SlurmCluster, SlurmOptions, WorkerCommand};

/// Set by the Ctrl-C handler in `main`.
static CTRL_C: AtomicBool = AtomicBool::new(false);

/// Called by the Ctrl-C handler: `rask slurm submit` then cancels its jobs and exits.
pub fn on_ctrl_c() {
    CTRL_C.store(true, Ordering::Release);
}

#[derive(Subcommand)]
pub enum SlurmCommand {
    /// Print the job script each worker job runs (nothing is submitted).
    Script(JobArgs),
    /// Start a scheduler here, submit worker jobs and run until Ctrl-C; then cancel them.
    Submit {
        /// Worker jobs to submit.
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// Instead of a fixed number: scale between 0 and this many jobs with the load.
        #[arg(long, conflicts_with = "jobs")]
        adapt_max: Option<usize>,
        /// Serve the dashboard on this address (`host:port`).
        #[arg(long)]
        dashboard: Option<String>,
        #[command(flatten)]
        job: JobArgs,
    },
}

#[derive(Args)]
pub struct JobArgs {
    /// The scheduler file, on a filesystem the compute nodes share: written by the scheduler
    /// (address, token, TLS credentials; mode 0600), read by the workers and clients.
    #[arg(long)]
    scheduler_file: PathBuf,
    /// Cores per job, shared evenly by its worker processes.
    #[arg(long, default_value_t = 1)]
    cores: u32,
    /// Worker processes per job.
    #[arg(long, default_value_t = 1)]
    processes: u32,
    /// Memory per job (`4GB`, `512MiB`), shared evenly by its worker processes.
    #[arg(long, default_value = "1GiB")]
    memory: String,
    /// Partition (`--partition`).
    #[arg(long)]
    queue: Option<String>,
    /// Account to charge (`--account`).
    #[arg(long)]
    account: Option<String>,
    /// Time limit: HH:MM:SS, D-HH:MM:SS, MM:SS or minutes.
    #[arg(long, default_value = "00:30:00")]
    walltime: String,
    #[arg(long, default_value = "rask-worker")]
    job_name: String,
    /// One more `#SBATCH` line, such as `--exclusive` or `--qos=high` (repeatable).
    #[arg(long = "directive", allow_hyphen_values = true)]
    directives: Vec<String>,
    /// A shell line run before the workers start, such as `module load rask` (repeatable).
    #[arg(long)]
    prologue: Vec<String>,
    /// Where the jobs write their output (default: the scheduler file's directory).
    #[arg(long)]
    log_directory: Option<PathBuf>,
    /// Where the scheduler listens (`host:port`; default: this host's address other hosts
    /// reach, a free port).
    #[arg(long)]
    listen: Option<String>,
    /// The `rask` binary the jobs run, on the shared filesystem (default: this one).
    #[arg(long)]
    rask: Option<PathBuf>,
}

impl JobArgs {
    fn options(&self) -> anyhow::Result<SlurmOptions> {
        let rask = match &self.rask {
            Some(p) => p.clone(),
            None => std::env::current_exe().context("finding this rask binary")?,
        };
        let mut o = SlurmOptions::new()
            .cores(self.cores)
            .processes(self.processes)
            .memory(self.memory.clone())
            .walltime(self.walltime.clone())
            .job_name(self.job_name.clone())
            .scheduler_file(self.scheduler_file.clone())
            .worker(WorkerCommand::RaskCli { path: rask });
        o.queue = self.queue.clone();
        o.account = self.account.clone();
        o.extra_directives = self.directives.clone();
        o.prologue = self.prologue.clone();
        o.log_directory = self.log_directory.clone();
        o.listen = self.listen.clone();
        Ok(o)
    }
}

pub fn run(cmd: SlurmCommand) -> anyhow::Result<()> {
    match cmd {
        SlurmCommand::Script(job) => {
            let o = job.options()?;
            print!("{}", o.job_script(&job.scheduler_file)?);
            Ok(())
        }
        SlurmCommand::Submit {
            jobs,
            adapt_max,
            dashboard,
            job,
        } => {
            let mut o = job.options()?;
            o.scheduler.dashboard = dashboard;
            let cluster = SlurmCluster::new(o)?;
            println!(
                "rask scheduler listening at {} (scheduler file {})",
                cluster.address(),
                cluster.scheduler_file().display()
            );
            if let Some(url) = cluster.dashboard_url() {
                println!("dashboard at {url}/status");
            }
            match adapt_max {
                Some(max) => {
                    cluster.adapt(0, max)?;
                    println!("scaling between 0 and {max} jobs with the load");
                }
                None => {
                    cluster.scale(jobs)?;
                    println!("submitted jobs {}", cluster.submitted().join(" "));
                }
            }
            println!(
                "job output in {}; Ctrl-C cancels the jobs and stops",
                cluster.log_directory().display()
            );
            let mut last_workers = usize::MAX;
            while !CTRL_C.load(Ordering::Acquire) {
                let n = cluster.n_workers();
                if n != last_workers {
                    println!("{n} worker(s) connected");
                    last_workers = n;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            let submitted = cluster.submitted();
            cluster.close()?;
            println!("cancelled jobs {}", submitted.join(" "));
            Ok(())
        }
    }
}
