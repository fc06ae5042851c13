//! SLURM: worker jobs pointed at a scheduler file, and `srun` mode.
//!
//! **[`SlurmCluster`]** is Dask-jobqueue's `SLURMCluster`: the scheduler runs in this process
//! and writes a scheduler file (address, token, TLS credentials; mode 0600) on a filesystem
//! the compute nodes share; each SLURM job runs `processes` worker processes that read that
//! file and join. [`SlurmCluster::scale`] submits (`sbatch --parsable`) or cancels
//! (`scancel`) jobs to reach a count, [`SlurmCluster::adapt`] does so from the scheduler's
//! load on a background thread, and dropping the cluster cancels every job it submitted and
//! waits until `squeue` no longer lists them. [`SlurmOptions::job_script`] shows the script
//! without submitting anything.
//!
//! The workers run the same binary as the program (the same-binary model, so its
//! `#[delayed]` functions run on them): by default this executable, which must call
//! `rask::distributed::init()` first thing in `main`; the job script points it at the
//! scheduler file through `RASK_WORKER_SCHEDULER_FILE`. [`WorkerCommand::RaskCli`] runs the
//! generic `rask worker --scheduler-file ...` instead (built-in ops only).
//!
//! **[`initialize`]** is dask-mpi for SLURM: `srun ./my_program` starts the program on every
//! task of an allocation; on task 0 `initialize` starts the scheduler in-process and returns
//! an [`SrunCluster`] to connect clients to; on every other task it runs a worker until the
//! scheduler goes away and then exits the process (it never returns there). When task 0's
//! `SrunCluster` is dropped (the program is done), the scheduler closes its workers, they exit,
//! and the job step ends.
//!
//! Everything goes through the SLURM commands (`sbatch`, `squeue`, `scancel`), found on
//! `PATH`; no SLURM library is linked. See `docs/deploy.md`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rask_distributed::client::{Client, ClientOptions};
use rask_distributed::local::{ENV_MEMORY_LIMIT, ENV_NAME, ENV_NTHREADS, ENV_SCHEDULER_FILE};
use rask_distributed::scheduler::{self, SchedulerHandle, SchedulerOptions};
use rask_error::{RaskError, Result};

/// The exit code with which a worker asks to be started again (memory over its limit); the
/// job script restarts such a worker, as Dask's nanny does.
const RESTART_EXIT_CODE: i32 = rask_distributed::local::RESTART_EXIT_CODE;

// ------------------------------------------------------------------ options

/// What the workers in a job run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum WorkerCommand {
    /// This executable, in the worker role (it must call `rask::distributed::init()` first
    /// thing in `main`). The default: the program's own `#[delayed]` functions run.
    #[default]
    CurrentExe,
    /// Another program that calls `rask::distributed::init()` first thing in `main`, with
    /// arguments (the worker role comes from `RASK_WORKER_*` environment variables).
    Program { path: PathBuf, args: Vec<String> },
    /// The `rask` command: `rask worker --scheduler-file ...` (built-in ops only).
    RaskCli { path: PathBuf },
}

/// The SLURM commands used (names looked up on `PATH`, or paths).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlurmCommands {
    pub sbatch: PathBuf,
    pub squeue: PathBuf,
    pub scancel: PathBuf,
}

impl Default for SlurmCommands {
    fn default() -> Self {
        SlurmCommands {
            sbatch: "sbatch".into(),
            squeue: "squeue".into(),
            scancel: "scancel".into(),
        }
    }
}

/// How each worker job looks (Dask-jobqueue's `SLURMCluster` arguments). Build with the
/// methods: `SlurmOptions::new().cores(8).processes(2).memory("16GB").queue("normal")`.
#[derive(Clone, Debug)]
pub struct SlurmOptions {
    /// Cores per job (`--cpus-per-task`), shared evenly by its worker processes: each
    /// process runs `cores / processes` threads (Dask's meaning of `cores`).
    pub cores: u32,
    /// Worker processes per job.
    pub processes: u32,
    /// Memory per job (`--mem`), shared evenly by its worker processes as their memory
    /// limits: `4GB`, `512MiB`, bytes.
    pub memory: String,
    /// The partition (`--partition`).
    pub queue: Option<String>,
    /// The account to charge (`--account`).
    pub account: Option<String>,
    /// The time limit (`--time`): `HH:MM:SS`, `D-HH:MM:SS`, `MM:SS` or minutes.
    pub walltime: String,
    /// `--job-name`.
    pub job_name: String,
    /// More `#SBATCH` lines (`--exclusive`, `#SBATCH --qos=high`; the prefix is added when
    /// missing), after the ones above, so they can override them.
    pub extra_directives: Vec<String>,
    /// Shell lines run before the workers start (`module load ...`, `source env.sh`).
    pub prologue: Vec<String>,
    /// What the workers run.
    pub worker: WorkerCommand,
    /// Where the scheduler writes its file; it must be on a filesystem the compute nodes
    /// share. Default: `rask-scheduler-<host>-<pid>` in the current directory. Removed when
    /// the cluster is dropped.
    pub scheduler_file: Option<PathBuf>,
    /// Where each job writes its output (`rask-worker-<jobid>.out`). Default: the scheduler
    /// file's directory.
    pub log_directory: Option<PathBuf>,
    /// Where the scheduler listens (`host:port`). Default: this host's address that other
    /// hosts reach (its name's address, else the interface of the default route), a free
    /// port.
    pub listen: Option<String>,
    /// The scheduler's other settings (security, token, dashboard, heartbeat timeout); its
    /// `listen` and `scheduler_file` are replaced by the fields above.
    pub scheduler: SchedulerOptions,
    /// The SLURM commands.
    pub commands: SlurmCommands,
    /// How long dropping the cluster waits for its jobs to leave `squeue`.
    pub cancel_timeout: Duration,
}

impl Default for SlurmOptions {
    fn default() -> Self {
        SlurmOptions {
            cores: 1,
            processes: 1,
            memory: "1GiB".into(),
            queue: None,
            account: None,
            walltime: "00:30:00".into(),
            job_name: "rask-worker".into(),
            extra_directives: Vec::new(),
            prologue: Vec::new(),
            worker: WorkerCommand::CurrentExe,
            scheduler_file: None,
            log_directory: None,
            listen: None,
            scheduler: SchedulerOptions::default(),
            commands: SlurmCommands::default(),
            cancel_timeout: Duration::from_secs(30),
        }
    }
}

impl SlurmOptions {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cores(mut self, cores: u32) -> Self {
        self.cores = cores;
        self
    }
    pub fn processes(mut self, processes: u32) -> Self {
        self.processes = processes;
        self
    }
    pub fn memory(mut self, memory: impl Into<String>) -> Self {
        self.memory = memory.into();
        self
    }
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }
    pub fn account(mut self, account: impl Into<String>) -> Self {
        self.account = Some(account.into());
        self
    }
    pub fn walltime(mut self, walltime: impl Into<String>) -> Self {
        self.walltime = walltime.into();
        self
    }
    pub fn job_name(mut self, name: impl Into<String>) -> Self {
        self.job_name = name.into();
        self
    }
    /// One more `#SBATCH` line.
    pub fn extra_directive(mut self, directive: impl Into<String>) -> Self {
        self.extra_directives.push(directive.into());
        self
    }
    /// One more shell line before the workers start.
    pub fn prologue(mut self, line: impl Into<String>) -> Self {
        self.prologue.push(line.into());
        self
    }
    pub fn worker(mut self, worker: WorkerCommand) -> Self {
        self.worker = worker;
        self
    }
    pub fn scheduler_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.scheduler_file = Some(path.into());
        self
    }
    pub fn log_directory(mut self, dir: impl Into<PathBuf>) -> Self {
        self.log_directory = Some(dir.into());
        self
    }
    pub fn listen(mut self, address: impl Into<String>) -> Self {
        self.listen = Some(address.into());
        self
    }
    pub fn scheduler_options(mut self, scheduler: SchedulerOptions) -> Self {
        self.scheduler = scheduler;
        self
    }
    pub fn commands(mut self, commands: SlurmCommands) -> Self {
        self.commands = commands;
        self
    }

    /// Threads of each worker process (`cores / processes`).
    pub fn threads_per_worker(&self) -> u32 {
        self.cores / self.processes.max(1)
    }

    /// Checks every option; errors name the option at fault.
    pub fn validate(&self) -> Result<()> {
        self.checked().map(|_| ())
    }

    fn checked(&self) -> Result<Checked> {
        if self.cores == 0 {
            return Err(RaskError::invalid_argument(
                "cores",
                "a job needs at least 1 core",
            ));
        }
        if self.processes == 0 {
            return Err(RaskError::invalid_argument(
                "processes",
                "a job needs at least 1 worker process",
            ));
        }
        if self.processes > self.cores || self.cores % self.processes != 0 {
            return Err(RaskError::invalid_argument(
                "processes",
                format!(
                    "{} worker processes cannot share {} cores evenly (cores is per job, \
                     split among its processes: give a multiple of processes)",
                    self.processes, self.cores
                ),
            ));
        }
        let memory =
            parse_bytes(&self.memory).map_err(|m| RaskError::invalid_argument("memory", m))?;
        if memory == 0 {
            return Err(RaskError::invalid_argument(
                "memory",
                "a job needs some memory (for example 4GB)",
            ));
        }
        if memory < u64::from(self.processes) * (1 << 20) {
            return Err(RaskError::invalid_argument(
                "memory",
                format!(
                    "`{}` is less than 1 MiB per worker process ({} processes)",
                    self.memory, self.processes
                ),
            ));
        }
        parse_walltime(&self.walltime)?;
        one_word("job_name", &self.job_name)?;
        if let Some(q) = &self.queue {
            one_word("queue", q)?;
        }
        if let Some(a) = &self.account {
            one_word("account", a)?;
        }
        let mut directives = Vec::new();
        for d in &self.extra_directives {
            let d = d.trim();
            if d.is_empty() || d.contains(['\n', '\r']) {
                return Err(RaskError::invalid_argument(
                    "extra_directives",
                    format!("{d:?} is not one `#SBATCH` line"),
                ));
            }
            directives.push(if d.starts_with("#SBATCH") {
                d.to_string()
            } else {
                format!("#SBATCH {d}")
            });
        }
        for l in &self.prologue {
            if l.contains(['\n', '\r']) {
                return Err(RaskError::invalid_argument(
                    "prologue",
                    format!("{l:?}: give one shell line per entry"),
                ));
            }
        }
        let worker = match &self.worker {
            WorkerCommand::CurrentExe => WorkerCommand::Program {
                path: std::env::current_exe()
                    .map_err(|e| RaskError::io("the current executable", e))?,
                args: Vec::new(),
            },
            WorkerCommand::Program { path, .. } | WorkerCommand::RaskCli { path }
                if path.as_os_str().is_empty() =>
            {
                return Err(RaskError::invalid_argument(
                    "worker",
                    "the worker program's path is empty",
                ));
            }
            other => other.clone(),
        };
        if self.cancel_timeout.is_zero() {
            return Err(RaskError::invalid_argument(
                "cancel_timeout",
                "must be longer than zero",
            ));
        }
        Ok(Checked {
            memory,
            directives,
            worker,
        })
    }

    /// The job script each job runs, for workers reading `scheduler_file` (made absolute).
    /// Errors name the option at fault.
    pub fn job_script(&self, scheduler_file: &Path) -> Result<String> {
        let c = self.checked()?;
        let file = absolute(scheduler_file)?;
        let logs = match &self.log_directory {
            Some(d) => absolute(d)?,
            None => file.parent().map(Path::to_path_buf).unwrap_or_default(),
        };
        Ok(self.render(&c, &file, &logs))
    }

    fn render(&self, c: &Checked, file: &Path, logs: &Path) -> String {
        let nthreads = self.threads_per_worker();
        let per_worker = c.memory / u64::from(self.processes);
        let mem_mib = c.memory.div_ceil(1 << 20);
        let mut s = String::from("#!/usr/bin/env bash\n");
        let mut d = |line: String| {
            s.push_str("#SBATCH ");
            s.push_str(&line);
            s.push('\n');
        };
        d(format!("--job-name={}", self.job_name));
        if let Some(q) = &self.queue {
            d(format!("--partition={q}"));
        }
        if let Some(a) = &self.account {
            d(format!("--account={a}"));
        }
        d("--nodes=1".into());
        d("--ntasks=1".into());
        d(format!("--cpus-per-task={}", self.cores));
        d(format!("--mem={mem_mib}M"));
        d(format!("--time={}", self.walltime));
        d(format!(
            "--output={}",
            logs.join(format!("{}-%j.out", self.job_name)).display()
        ));
        for x in &c.directives {
            s.push_str(x);
            s.push('\n');
        }
        s.push_str(&format!(
            "\n# {} rask worker process(es) of {nthreads} thread(s) and {per_worker} bytes each,\n\
             # joining the scheduler named in {}.\n",
            self.processes,
            file.display()
        ));
        for l in &self.prologue {
            s.push_str(l);
            s.push('\n');
        }
        s.push_str(&format!(
            "\n# A worker exiting with code {RESTART_EXIT_CODE} asked to be started again \
             (memory over its limit).\n\
             rask_worker() {{\n    while true; do\n        \"$@\"\n        code=$?\n        \
             [ \"$code\" -eq {RESTART_EXIT_CODE} ] || return \"$code\"\n        \
             echo \"rask worker: starting again\" >&2\n    done\n}}\n\n"
        ));
        let file_q = sh_quote(&file.display().to_string());
        match &c.worker {
            WorkerCommand::RaskCli { path } => {
                let rask = sh_quote(&path.display().to_string());
                for i in 0..self.processes {
                    s.push_str(&format!(
                        "rask_worker {rask} worker --scheduler-file {file_q} --nthreads \
                         {nthreads} --memory-limit {per_worker} --name \
                         \"slurm-${{SLURM_JOB_ID}}-{i}\" &\n"
                    ));
                }
            }
            WorkerCommand::Program { path, args } => {
                s.push_str(&format!("export {ENV_SCHEDULER_FILE}={file_q}\n"));
                s.push_str(&format!("export {ENV_NTHREADS}={nthreads}\n"));
                s.push_str(&format!("export {ENV_MEMORY_LIMIT}={per_worker}\n"));
                let mut cmd = sh_quote(&path.display().to_string());
                for a in args {
                    cmd.push(' ');
                    cmd.push_str(&sh_quote(a));
                }
                for i in 0..self.processes {
                    s.push_str(&format!(
                        "rask_worker env {ENV_NAME}=\"slurm-${{SLURM_JOB_ID}}-{i}\" {cmd} &\n"
                    ));
                }
            }
            WorkerCommand::CurrentExe => unreachable!("checked() resolves it"),
        }
        s.push_str("wait\n");
        s
    }
}

/// Options after checking.
struct Checked {
    memory: u64,
    directives: Vec<String>,
    /// `CurrentExe` resolved to a `Program`.
    worker: WorkerCommand,
}

fn one_word(name: &str, v: &str) -> Result<()> {
    if v.is_empty()
        || v.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\'' || c == '"')
    {
        return Err(RaskError::invalid_argument(
            name,
            format!("{v:?} must be one word (no spaces or quotes)"),
        ));
    }
    Ok(())
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| RaskError::io(p.display(), e))
}

/// `p` quoted for a POSIX shell when it needs it.
fn sh_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:=@%+,-".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

pub use rask_distributed::worker::parse_bytes;

/// A SLURM time limit in seconds: `HH:MM:SS`, `D-HH:MM:SS`, `D-HH:MM`, `D-HH`, `MM:SS` or
/// minutes. Errors name `walltime`.
pub fn parse_walltime(s: &str) -> Result<u64> {
    let bad = |why: &str| {
        RaskError::invalid_argument(
            "walltime",
            format!(
                "`{s}` is not a SLURM time limit ({why}): use HH:MM:SS, D-HH:MM:SS, MM:SS or \
                 minutes"
            ),
        )
    };
    let num = |p: &str| -> Result<u64> {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 9 {
            return Err(bad("not a number"));
        }
        Ok(p.parse().expect("digits"))
    };
    let t = s.trim();
    let (days, rest) = match t.split_once('-') {
        Some((d, r)) => (Some(num(d)?), r),
        None => (None, t),
    };
    let parts: Vec<u64> = rest.split(':').map(num).collect::<Result<_>>()?;
    let secs = match (days, parts.as_slice()) {
        (None, [m]) => m * 60,
        (None, [m, sec]) => {
            if *sec >= 60 {
                return Err(bad("seconds must be under 60"));
            }
            m * 60 + sec
        }
        (None, [h, m, sec]) | (Some(_), [h, m, sec]) => {
            if *m >= 60 || *sec >= 60 {
                return Err(bad("minutes and seconds must be under 60"));
            }
            if days.is_some() && *h >= 24 {
                return Err(bad("hours must be under 24 after a day count"));
            }
            days.unwrap_or(0) * 86400 + h * 3600 + m * 60 + sec
        }
        (Some(d), [h]) => {
            if *h >= 24 {
                return Err(bad("hours must be under 24 after a day count"));
            }
            d * 86400 + h * 3600
        }
        (Some(d), [h, m]) => {
            if *h >= 24 || *m >= 60 {
                return Err(bad("hours under 24, minutes under 60"));
            }
            d * 86400 + h * 3600 + m * 60
        }
        _ => return Err(bad("too many fields")),
    };
    if secs == 0 {
        return Err(bad("it must be longer than zero"));
    }
    Ok(secs)
}

// ------------------------------------------------------------------ the SLURM commands

/// Finds `cmd` (a name on `PATH`, or a path); the error names it and how to install it.
fn require(cmd: &Path) -> Result<PathBuf> {
    let is_path = cmd.components().count() > 1;
    let not_found = || {
        RaskError::io(
            cmd.display(),
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "{}: SLURM's client commands (sbatch, squeue, scancel) are needed; install \
                     them (Debian/Ubuntu: `apt-get install slurm-client`; on a cluster: \
                     `module load slurm`) or run on a login node",
                    if is_path {
                        "no such file"
                    } else {
                        "not found on PATH"
                    }
                ),
            ),
        )
    };
    if is_path {
        return if cmd.is_file() {
            Ok(cmd.to_path_buf())
        } else {
            Err(not_found())
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(cmd);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(not_found())
}

/// Runs a SLURM command; its standard output, or an error naming the command line and
/// saying what it printed.
fn run(cmd: &Path, args: &[String], stdin: Option<&str>) -> Result<String> {
    let line = format!("{} {}", cmd.display(), args.join(" "));
    let mut c = Command::new(cmd);
    c.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| RaskError::io(&line, e))?;
    if let (Some(text), Some(mut w)) = (stdin, child.stdin.take()) {
        w.write_all(text.as_bytes())
            .map_err(|e| RaskError::io(&line, e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| RaskError::io(&line, e))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(RaskError::msg(format!(
            "`{line}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// A job as `squeue` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlurmJob {
    pub id: String,
    /// `PENDING`, `RUNNING`, `COMPLETING`, ...
    pub state: String,
}

impl SlurmJob {
    /// Pending or running: it counts towards the cluster's size.
    pub fn is_active(&self) -> bool {
        !matches!(
            self.state.as_str(),
            "COMPLETING"
                | "COMPLETED"
                | "CANCELLED"
                | "FAILED"
                | "TIMEOUT"
                | "NODE_FAIL"
                | "PREEMPTED"
                | "BOOT_FAIL"
                | "DEADLINE"
                | "OUT_OF_MEMORY"
                | "SPECIAL_EXIT"
                | "REVOKED"
        )
    }
}

/// Parses `squeue -h -o "%i %T"` output.
fn parse_squeue(out: &str) -> Vec<SlurmJob> {
    out.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some(SlurmJob {
                id: it.next()?.to_string(),
                state: it.next().unwrap_or("UNKNOWN").to_string(),
            })
        })
        .collect()
}

/// The jobs among `ids` that `squeue` still lists.
fn squeue(cmds: &SlurmCommands, ids: &[String]) -> Result<Vec<SlurmJob>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let args = vec![
        "-h".to_string(),
        "-j".to_string(),
        ids.join(","),
        "-o".to_string(),
        "%i %T".to_string(),
    ];
    match run(&cmds.squeue, &args, None) {
        Ok(out) => Ok(parse_squeue(&out)
            .into_iter()
            .filter(|j| ids.contains(&j.id))
            .collect()),
        // Every job ended long enough ago that the controller forgot it.
        Err(e) if e.to_string().contains("Invalid job id") => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn scancel(cmds: &SlurmCommands, ids: &[String]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    run(&cmds.scancel, ids, None).map(|_| ())
}

/// Submits `script`; the job's id.
fn sbatch(cmds: &SlurmCommands, script: &str) -> Result<String> {
    let out = run(&cmds.sbatch, &["--parsable".to_string()], Some(script))?;
    // `--parsable` prints `id` or `id;cluster`.
    let id = out
        .trim()
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        return Err(RaskError::msg(format!(
            "sbatch --parsable printed {out:?}, not a job id"
        )));
    }
    Ok(id)
}

// ------------------------------------------------------------------ SlurmCluster

/// The jobs a cluster submitted.
#[derive(Default)]
struct Jobs {
    /// Submitted and not seen ending, oldest first.
    live: Vec<String>,
    /// Every job ever submitted (cancelled on drop).
    all: Vec<String>,
}

struct Shared {
    script: String,
    commands: SlurmCommands,
    jobs: Mutex<Jobs>,
}

impl Shared {
    fn jobs(&self) -> std::sync::MutexGuard<'_, Jobs> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops the jobs `squeue` no longer shows active; the active ones with their states.
    fn refresh(&self, jobs: &mut Jobs) -> Result<Vec<SlurmJob>> {
        let listed = squeue(&self.commands, &jobs.live)?;
        let active: Vec<SlurmJob> = listed.into_iter().filter(SlurmJob::is_active).collect();
        jobs.live.retain(|id| active.iter().any(|j| &j.id == id));
        Ok(active)
    }

    /// Submits or cancels jobs until `n` are active.
    fn scale_to(&self, n: usize) -> Result<()> {
        let mut jobs = self.jobs();
        let active = self.refresh(&mut jobs)?;
        while jobs.live.len() < n {
            let id = sbatch(&self.commands, &self.script)?;
            tracing::info!("submitted SLURM job {id}");
            jobs.live.push(id.clone());
            jobs.all.push(id);
        }
        if jobs.live.len() > n {
            // Pending jobs first (nothing runs there yet), then the newest.
            let mut order: Vec<String> = jobs.live.iter().rev().cloned().collect();
            order.sort_by_key(|id| !active.iter().any(|j| &j.id == id && j.state == "PENDING"));
            let victims: Vec<String> = order.into_iter().take(jobs.live.len() - n).collect();
            tracing::info!("cancelling SLURM jobs {}", victims.join(","));
            scancel(&self.commands, &victims)?;
            jobs.live.retain(|id| !victims.contains(id));
        }
        Ok(())
    }
}

/// How [`SlurmCluster::adapt_with`] scales: up at once to [`adapt_target`] jobs, down after
/// `wait_count` readings in a row asked for fewer, and only while the cluster holds no values
/// (every future released), since a cancelled job's values are lost with it.
#[derive(Clone, Debug)]
pub struct AdaptOptions {
    pub minimum: usize,
    pub maximum: usize,
    /// How often the scheduler's load is read.
    pub interval: Duration,
    /// Scale down only after this many readings in a row asked for fewer jobs (Dask's
    /// `wait_count`), so a pause between two computations does not cancel workers.
    pub wait_count: u32,
}

impl AdaptOptions {
    pub fn new(minimum: usize, maximum: usize) -> Self {
        AdaptOptions {
            minimum,
            maximum,
            interval: Duration::from_secs(1),
            wait_count: 3,
        }
    }
}

/// The jobs wanted for `unfinished` tasks (waiting, queued or processing) when each job runs
/// `threads_per_job` tasks at once: one thread per task, within `[minimum, maximum]`.
pub fn adapt_target(
    unfinished: usize,
    threads_per_job: usize,
    minimum: usize,
    maximum: usize,
) -> usize {
    unfinished
        .div_ceil(threads_per_job.max(1))
        .clamp(minimum, maximum.max(minimum))
}

struct Adaptive {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

/// A scheduler in this process and workers in SLURM jobs (Dask-jobqueue's `SLURMCluster`).
/// Dropping it stops the scheduler, cancels every job it submitted and waits (up to
/// `cancel_timeout`) until `squeue` no longer lists them.
pub struct SlurmCluster {
    scheduler: Option<Arc<SchedulerHandle>>,
    shared: Arc<Shared>,
    /// Written by the scheduler, removed on close (it holds the dead cluster's key).
    scheduler_file: PathBuf,
    log_directory: PathBuf,
    threads_per_job: usize,
    cancel_timeout: Duration,
    adaptive: Mutex<Option<Adaptive>>,
}

impl SlurmCluster {
    /// Checks the options and the SLURM commands, starts the scheduler (writing the scheduler
    /// file) and submits nothing yet: call [`scale`](Self::scale) or [`adapt`](Self::adapt).
    pub fn new(opts: SlurmOptions) -> Result<SlurmCluster> {
        let checked = opts.checked()?;
        let commands = SlurmCommands {
            sbatch: require(&opts.commands.sbatch)?,
            squeue: require(&opts.commands.squeue)?,
            scancel: require(&opts.commands.scancel)?,
        };
        let file = match &opts.scheduler_file {
            Some(p) => absolute(p)?,
            None => absolute(Path::new(&format!(
                "rask-scheduler-{}-{}",
                hostname(),
                std::process::id()
            )))?,
        };
        let log_directory = match &opts.log_directory {
            Some(d) => absolute(d)?,
            None => file.parent().map(Path::to_path_buf).unwrap_or_default(),
        };
        std::fs::create_dir_all(&log_directory)
            .map_err(|e| RaskError::io(log_directory.display(), e))?;
        let script = opts.render(&checked, &file, &log_directory);
        let mut sopts = opts.scheduler.clone();
        sopts.listen = match &opts.listen {
            Some(l) => l.clone(),
            None => std::net::SocketAddr::new(reachable_ip(), 0).to_string(),
        };
        sopts.scheduler_file = Some(file.clone());
        let handle = scheduler::start(sopts).map_err(|e| e.context("starting the scheduler"))?;
        Ok(SlurmCluster {
            scheduler: Some(Arc::new(handle)),
            shared: Arc::new(Shared {
                script,
                commands,
                jobs: Mutex::new(Jobs::default()),
            }),
            scheduler_file: file,
            log_directory,
            threads_per_job: opts.cores as usize,
            cancel_timeout: opts.cancel_timeout,
            adaptive: Mutex::new(None),
        })
    }

    fn handle(&self) -> &SchedulerHandle {
        self.scheduler.as_ref().expect("running")
    }

    /// The script each job runs.
    pub fn job_script(&self) -> String {
        self.shared.script.clone()
    }

    /// The scheduler file the workers read (clients connect through it too).
    pub fn scheduler_file(&self) -> &Path {
        &self.scheduler_file
    }

    /// The scheduler's address.
    pub fn address(&self) -> &str {
        self.handle().address()
    }

    /// Where the jobs write their output.
    pub fn log_directory(&self) -> &Path {
        &self.log_directory
    }

    /// `http://host:port` of the scheduler's dashboard, when it serves one.
    pub fn dashboard_url(&self) -> Option<String> {
        self.handle().dashboard_url()
    }

    /// A client connected through the scheduler file.
    pub fn client(&self) -> Result<Client> {
        connect(&self.scheduler_file)
    }

    /// Submits or cancels jobs until `jobs` are pending or running (each runs `processes`
    /// workers). Stops [`adapt`](Self::adapt), as in Dask.
    pub fn scale(&self, jobs: usize) -> Result<()> {
        self.stop_adapting();
        self.shared.scale_to(jobs)
    }

    /// Scales between `minimum` and `maximum` jobs from the scheduler's load, on a background
    /// thread (see [`AdaptOptions`]).
    pub fn adapt(&self, minimum: usize, maximum: usize) -> Result<()> {
        self.adapt_with(AdaptOptions::new(minimum, maximum))
    }

    pub fn adapt_with(&self, a: AdaptOptions) -> Result<()> {
        if a.maximum < a.minimum {
            return Err(RaskError::invalid_argument(
                "maximum",
                format!("{} is below minimum {}", a.maximum, a.minimum),
            ));
        }
        if a.interval.is_zero() {
            return Err(RaskError::invalid_argument(
                "interval",
                "must be longer than zero",
            ));
        }
        self.stop_adapting();
        let stop = Arc::new(AtomicBool::new(false));
        let shared = self.shared.clone();
        let scheduler = self.scheduler.clone().expect("running");
        let per_job = self.threads_per_job;
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("rask-slurm-adapt".into())
            .spawn(move || {
                let mut below = 0u32;
                let mut since_refresh = Instant::now();
                while !stop2.load(Ordering::Acquire) {
                    let stats = scheduler.stats();
                    let unfinished = stats.unfinished.load(Ordering::Relaxed);
                    let mut target = adapt_target(unfinished, per_job, a.minimum, a.maximum);
                    let have = shared.jobs().live.len();
                    // Workers are not drained before their job is cancelled: while the
                    // cluster holds any value (a future not yet released), keep them all.
                    if target < have && stats.tasks.load(Ordering::Relaxed) > 0 {
                        target = have;
                    }
                    let result = if target > have {
                        below = 0;
                        shared.scale_to(target)
                    } else if target < have {
                        below += 1;
                        if below >= a.wait_count.max(1) {
                            below = 0;
                            shared.scale_to(target)
                        } else {
                            Ok(())
                        }
                    } else {
                        below = 0;
                        // Jobs that ended on their own (walltime, failure) are replaced.
                        if since_refresh.elapsed() >= Duration::from_secs(10) {
                            since_refresh = Instant::now();
                            shared.scale_to(target)
                        } else {
                            Ok(())
                        }
                    };
                    if let Err(e) = result {
                        tracing::warn!("adaptive SLURM scaling: {e}");
                    }
                    let until = Instant::now() + a.interval;
                    while Instant::now() < until && !stop2.load(Ordering::Acquire) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })
            .map_err(|e| RaskError::io("the adaptive scaling thread", e))?;
        *self.adaptive.lock().unwrap_or_else(|p| p.into_inner()) = Some(Adaptive { stop, thread });
        Ok(())
    }

    fn stop_adapting(&self) {
        let a = self
            .adaptive
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(a) = a {
            a.stop.store(true, Ordering::Release);
            let _ = a.thread.join();
        }
    }

    /// The cluster's jobs that are pending or running, as `squeue` shows them.
    pub fn jobs(&self) -> Result<Vec<SlurmJob>> {
        let mut jobs = self.shared.jobs();
        self.shared.refresh(&mut jobs)
    }

    /// Every job id this cluster submitted, oldest first.
    pub fn submitted(&self) -> Vec<String> {
        self.shared.jobs().all.clone()
    }

    /// Workers connected to the scheduler now.
    pub fn n_workers(&self) -> usize {
        self.handle().stats().workers.load(Ordering::Relaxed)
    }

    /// Waits until `n` workers are connected. Fails after `timeout`, or as soon as none of
    /// the cluster's jobs is pending or running any more, naming the log directory.
    pub fn wait_for_workers(&self, n: usize, timeout: Duration) -> Result<()> {
        let mut checked = Instant::now();
        let mut squeue_error = None;
        let res = self.handle().wait_for_workers(n, timeout, || {
            if checked.elapsed() < Duration::from_secs(2) {
                return None;
            }
            checked = Instant::now();
            match self.jobs() {
                Ok(jobs) if jobs.is_empty() => {
                    Some("no job of this cluster is pending or running".into())
                }
                Ok(_) => None,
                Err(e) => {
                    let why = e.to_string();
                    squeue_error = Some(e);
                    Some(why)
                }
            }
        });
        if let Some(e) = squeue_error {
            return Err(e);
        }
        res.map_err(|e| {
            let jobs = self.jobs().unwrap_or_default();
            e.context(format!(
                "jobs: {jobs:?}; job output in {}",
                self.log_directory.display()
            ))
        })
    }

    /// Stops the scheduler, cancels every job and waits until `squeue` no longer lists them
    /// (what dropping does, with the error if they do not leave within `cancel_timeout`).
    pub fn close(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        self.stop_adapting();
        let Some(scheduler) = self.scheduler.take() else {
            return Ok(());
        };
        // The scheduler tells its workers to close: running jobs end on their own.
        drop(scheduler);
        let ids = self.shared.jobs().all.clone();
        // A job that already ended makes scancel complain; the wait below is what counts.
        if let Err(e) = scancel(&self.shared.commands, &ids) {
            tracing::debug!("scancel: {e}");
        }
        let deadline = Instant::now() + self.cancel_timeout;
        let result = loop {
            match squeue(&self.shared.commands, &ids) {
                Ok(left) if left.is_empty() => break Ok(()),
                Ok(left) if Instant::now() >= deadline => {
                    break Err(RaskError::msg(format!(
                        "SLURM jobs still listed by squeue {:?} after cancelling them: {left:?}",
                        self.cancel_timeout
                    )));
                }
                Err(e) if Instant::now() >= deadline => break Err(e),
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        self.shared.jobs().live.clear();
        let _ = std::fs::remove_file(&self.scheduler_file);
        result
    }
}

impl Drop for SlurmCluster {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!("closing the SLURM cluster: {e}");
            eprintln!("rask: closing the SLURM cluster: {e}");
        }
    }
}

/// A client connected through a scheduler file (address, token, TLS credentials).
fn connect(file: &Path) -> Result<Client> {
    Client::connect(ClientOptions::from_scheduler_file(file)?)
}

/// This host's name (short form, as `hostname -s`).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().split('.').next().unwrap_or("").to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// An address of this host that other hosts reach: its name's address when that is not a
/// loopback one, else the interface of the default route, else loopback.
fn reachable_ip() -> std::net::IpAddr {
    use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs, UdpSocket};
    if let Ok(addrs) = (hostname().as_str(), 0).to_socket_addrs() {
        if let Some(a) = addrs
            .map(|a| a.ip())
            .find(|ip| !ip.is_loopback() && !ip.is_unspecified())
        {
            return a;
        }
    }
    // A connected UDP socket picks the route without sending anything.
    if let Ok(s) = UdpSocket::bind("0.0.0.0:0")
        && s.connect("192.0.2.1:9").is_ok()
        && let Ok(a) = s.local_addr()
        && !a.ip().is_unspecified()
    {
        return a.ip();
    }
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

// ------------------------------------------------------------------ srun mode

/// Where this process sits in an `srun` job step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrunTask {
    /// `SLURM_PROCID`: 0 is the scheduler and client, the others workers.
    pub rank: usize,
    /// `SLURM_NTASKS`.
    pub ntasks: usize,
    /// `SLURM_JOB_ID`.
    pub job_id: String,
    /// `SLURM_STEP_ID` (`0` when unset).
    pub step_id: String,
    /// `SLURM_CPUS_PER_TASK`, when set.
    pub cpus_per_task: Option<u32>,
}

impl SrunTask {
    /// From SLURM's environment variables; errors name the variable and say how to run.
    pub fn from_env() -> Result<SrunTask> {
        SrunTask::from_vars(|k| std::env::var(k).ok())
    }

    /// From a lookup of variables (for tests).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<SrunTask> {
        let need = |k: &str| {
            get(k).ok_or_else(|| {
                RaskError::invalid_argument(
                    k,
                    "is not set: run the program with srun inside an allocation, for example \
                     `sbatch --ntasks=4 --wrap 'srun ./my_program'`",
                )
            })
        };
        let number = |k: &str, v: String| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| RaskError::invalid_argument(k, format!("`{v}` is not a whole number")))
        };
        let rank = number("SLURM_PROCID", need("SLURM_PROCID")?)?;
        let ntasks = number("SLURM_NTASKS", need("SLURM_NTASKS")?)?;
        let job_id = need("SLURM_JOB_ID")?;
        if ntasks < 2 {
            return Err(RaskError::invalid_argument(
                "SLURM_NTASKS",
                format!(
                    "{ntasks} task(s): srun mode needs at least 2 (task 0 runs the scheduler \
                     and the client, the others workers)"
                ),
            ));
        }
        if rank >= ntasks {
            return Err(RaskError::invalid_argument(
                "SLURM_PROCID",
                format!("{rank} is not below SLURM_NTASKS={ntasks}"),
            ));
        }
        let cpus_per_task = match get("SLURM_CPUS_PER_TASK") {
            Some(v) => Some(number("SLURM_CPUS_PER_TASK", v)?.max(1) as u32),
            None => None,
        };
        Ok(SrunTask {
            rank,
            ntasks,
            job_id,
            step_id: get("SLURM_STEP_ID").unwrap_or_else(|| "0".into()),
            cpus_per_task,
        })
    }
}

/// How [`initialize`] sets up the job step.
#[derive(Clone, Debug)]
pub struct SrunOptions {
    /// The scheduler file (on a filesystem every task sees). Default:
    /// `rask-scheduler-<jobid>.<stepid>` in the current directory (the same for every task).
    pub scheduler_file: Option<PathBuf>,
    /// Where the scheduler listens (`host:port`). Default: this host's reachable address, a
    /// free port.
    pub listen: Option<String>,
    /// The scheduler's other settings (security, token, dashboard).
    pub scheduler: SchedulerOptions,
    /// Threads per worker. Default: `SLURM_CPUS_PER_TASK`, else every core.
    pub nthreads: Option<u32>,
    /// Per worker, bytes; 0 for none.
    pub memory_limit: u64,
    /// How long workers wait for task 0's scheduler file.
    pub scheduler_wait: Duration,
    /// How long a worker keeps trying to reach a lost scheduler before exiting.
    pub worker_reconnect: Duration,
}

impl Default for SrunOptions {
    fn default() -> Self {
        SrunOptions {
            scheduler_file: None,
            listen: None,
            scheduler: SchedulerOptions::default(),
            nthreads: None,
            memory_limit: 0,
            scheduler_wait: Duration::from_secs(120),
            worker_reconnect: Duration::from_secs(10),
        }
    }
}

impl SrunOptions {
    /// The scheduler file for this task's step.
    pub fn scheduler_file_for(&self, task: &SrunTask) -> Result<PathBuf> {
        match &self.scheduler_file {
            Some(p) => absolute(p),
            None => absolute(Path::new(&format!(
                "rask-scheduler-{}.{}",
                task.job_id, task.step_id
            ))),
        }
    }
}

/// Task 0's side of an `srun` job step: the scheduler, and the workers the other tasks run.
/// Dropping it stops the scheduler, which closes the workers (they exit, so the step ends)
/// and removes the scheduler file.
pub struct SrunCluster {
    scheduler: Option<SchedulerHandle>,
    scheduler_file: PathBuf,
    task: SrunTask,
}

/// dask-mpi's `initialize` for SLURM: call it early in `main` of a program started with
/// `srun`. Task 0 starts the scheduler (writing the scheduler file) and gets the
/// [`SrunCluster`]; every other task waits for the file, runs a worker until the scheduler
/// goes away, and exits the process: there this function never returns.
pub fn initialize(opts: SrunOptions) -> Result<SrunCluster> {
    let task = SrunTask::from_env()?;
    let file = opts.scheduler_file_for(&task)?;
    if task.rank != 0 {
        run_srun_worker(&opts, &task, &file);
    }
    if let Some(n) = opts.nthreads
        && n == 0
    {
        return Err(RaskError::invalid_argument(
            "nthreads",
            "must be at least 1",
        ));
    }
    // A file left by an earlier step of the same name would send workers elsewhere.
    let _ = std::fs::remove_file(&file);
    let mut sopts = opts.scheduler.clone();
    sopts.listen = match &opts.listen {
        Some(l) => l.clone(),
        None => std::net::SocketAddr::new(reachable_ip(), 0).to_string(),
    };
    sopts.scheduler_file = Some(file.clone());
    let handle = scheduler::start(sopts).map_err(|e| e.context("starting the scheduler"))?;
    Ok(SrunCluster {
        scheduler: Some(handle),
        scheduler_file: file,
        task,
    })
}

/// A worker of an `srun` step: never returns.
fn run_srun_worker(opts: &SrunOptions, task: &SrunTask, file: &Path) -> ! {
    let filter = std::env::var("RASK_LOG").unwrap_or_else(|_| "warn".into());
    rask_distributed::logs::init_logging(&filter);
    let name = format!("srun-{}-{}", task.job_id, task.rank);
    let code = match srun_worker(opts, task, file, &name) {
        Ok(rask_distributed::worker::WorkerExit::Closed) => 0,
        Ok(rask_distributed::worker::WorkerExit::Restart(reason)) => {
            eprintln!("rask worker {name}: over its memory limit, exiting: {reason}");
            RESTART_EXIT_CODE
        }
        Err(e) => {
            eprintln!("rask worker {name}: {e}");
            1
        }
    };
    std::process::exit(code);
}

fn srun_worker(
    opts: &SrunOptions,
    task: &SrunTask,
    file: &Path,
    name: &str,
) -> Result<rask_distributed::worker::WorkerExit> {
    if let Some(0) = opts.nthreads {
        return Err(RaskError::invalid_argument(
            "nthreads",
            "must be at least 1",
        ));
    }
    let deadline = Instant::now() + opts.scheduler_wait;
    let mut w = loop {
        match rask_distributed::local::worker_options_from_scheduler_file(file) {
            Ok(w) => break w,
            Err(e) if Instant::now() >= deadline => {
                return Err(e.context(format!(
                    "task 0 did not write the scheduler file {} within {:?} (did it call \
                     rask_deploy::slurm::initialize?)",
                    file.display(),
                    opts.scheduler_wait
                )));
            }
            // Not there yet, or being written.
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    if let Some(n) = opts.nthreads.or(task.cpus_per_task) {
        w.nthreads = n;
    }
    w.memory_limit = opts.memory_limit;
    w.name = name.to_string();
    w.reconnect_for = opts.worker_reconnect;
    rask_distributed::worker::run_worker(w)
}

impl SrunCluster {
    fn handle(&self) -> &SchedulerHandle {
        self.scheduler.as_ref().expect("running")
    }

    /// This task's place in the step.
    pub fn task(&self) -> &SrunTask {
        &self.task
    }

    /// The workers the step runs (`SLURM_NTASKS - 1`).
    pub fn expected_workers(&self) -> usize {
        self.task.ntasks - 1
    }

    pub fn scheduler_file(&self) -> &Path {
        &self.scheduler_file
    }

    pub fn address(&self) -> &str {
        self.handle().address()
    }

    /// A client connected through the scheduler file.
    pub fn client(&self) -> Result<Client> {
        connect(&self.scheduler_file)
    }

    /// Workers connected now.
    pub fn n_workers(&self) -> usize {
        self.handle().stats().workers.load(Ordering::Relaxed)
    }

    /// Waits until `n` workers are connected; the error after `timeout` says how many came.
    pub fn wait_for_workers(&self, n: usize, timeout: Duration) -> Result<()> {
        self.handle().wait_for_workers(n, timeout, || None)
    }
}

impl Drop for SrunCluster {
    fn drop(&mut self) {
        if let Some(s) = self.scheduler.take() {
            s.stop();
        }
        let _ = std::fs::remove_file(&self.scheduler_file);
    }
}

#[cfg(test)]
mod tests;
