//! The `rask` command.
//!
//! `rask demo` runs the Dask tutorial's workloads on the local scheduler with generated data,
//! showing results, timings and (on a terminal) progress bars. `rask datasets` writes the
//! tutorial's deterministic datasets (see `datasets/README.md`). `rask scheduler` and
//! `rask worker` start the processes of a cluster (see `docs/distributed.md`); the worker runs
//! the built-in ops (arrays, literals, the examples' functions) that this binary links.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use rask::prelude::*;
use rask::{Plan, Progress};
use rask_examples::delayed_tutorial as tutorial;
use rask_examples::{array_tutorial, datasets};

mod k8s;
mod slurm;

#[derive(Parser)]
#[command(name = "rask", version, about = "Dask, done natively in Rust")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log level for tracing output on stderr (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "warn")]
    log: String,
}

#[derive(Subcommand)]
enum Command {
    /// Run the tutorial workloads on the local scheduler and print results and timings.
    Demo {
        /// Executor to run on.
        #[arg(long, value_enum, default_value_t = ExecutorArg::Threads)]
        executor: ExecutorArg,
        /// Sleep in each "slow" tutorial function, in milliseconds (the tutorial uses 1000).
        #[arg(long, default_value_t = 500)]
        pause_ms: u64,
        /// Number of `inc` tasks in the overhead workload (plus a tree of `add`s).
        #[arg(long, default_value_t = 100_000)]
        tasks: usize,
        /// Write the tree-reduction graph as SVG (or DOT, by extension) to this file.
        #[arg(long)]
        svg: Option<std::path::PathBuf>,
        /// Shorter pauses, fewer tasks and smaller arrays, for a quick check.
        #[arg(long)]
        quick: bool,
        /// Serve the live dashboard while the demo runs (`host:port`; with no value,
        /// 127.0.0.1:8787), and keep serving it for this many seconds after the demo ends
        /// (--dashboard-linger).
        #[arg(long, num_args = 0..=1, default_missing_value = "127.0.0.1:8787")]
        dashboard: Option<String>,
        /// Seconds the dashboard stays up after the demo.
        #[arg(long, default_value_t = 0)]
        dashboard_linger: u64,
    },
    /// Run a scheduler: clients and workers connect to it.
    Scheduler {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Port to listen on (0 picks a free one; the address is printed).
        #[arg(long, default_value_t = 8786)]
        port: u16,
        /// Write the address (and token) here, mode 0600, for workers and clients.
        #[arg(long)]
        scheduler_file: Option<std::path::PathBuf>,
        /// Seconds without a message after which a worker is considered gone.
        #[arg(long, default_value_t = 10.0)]
        heartbeat_timeout: f64,
        /// Require this token from every connection.
        #[arg(long)]
        token: Option<String>,
        /// Serve the dashboard on this address (`host:port`; Dask's is 127.0.0.1:8787).
        #[arg(long)]
        dashboard: Option<String>,
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// Run a worker that joins a scheduler.
    Worker {
        /// The scheduler's address (`host:port`); or give --scheduler-file.
        address: Option<String>,
        #[arg(long)]
        scheduler_file: Option<std::path::PathBuf>,
        /// Threads running tasks (default: every core).
        #[arg(long)]
        nthreads: Option<u32>,
        /// Memory limit: bytes, or with a unit (`4GB`, `512MiB`); 0 for none. Spilling
        /// starts at 60%, new work pauses at 80%, the worker restarts at 95%.
        #[arg(long, default_value = "0", value_parser = parse_bytes)]
        memory_limit: u64,
        /// Where the data port listens (`host:port`). Default: the address of the interface
        /// that routes to the scheduler, on a free port.
        #[arg(long, default_value = "")]
        listen: String,
        /// The host peers use to reach this worker, when --listen binds a wildcard.
        #[arg(long)]
        contact_host: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        token: Option<String>,
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// Write one of the tutorial's deterministic datasets.
    Datasets {
        #[command(subcommand)]
        dataset: Dataset,
    },
    /// Deploy on Kubernetes: write a cluster's manifests (see docs/deploy.md).
    K8s {
        #[command(subcommand)]
        cmd: k8s::K8sCommand,
    },
    /// Deploy on SLURM: print the worker job script, or submit worker jobs (see
    /// docs/deploy.md).
    Slurm {
        #[command(subcommand)]
        cmd: slurm::SlurmCommand,
    },
}

/// TLS and token options shared by `scheduler` and `worker`. TLS is on by default: the
/// scheduler makes fresh credentials and writes them into its scheduler file, where workers
/// and clients read them.
#[derive(clap::Args)]
struct SecurityArgs {
    /// The cluster's CA certificate (PEM); with --tls-cert-file and --tls-key-file, TLS with
    /// these credentials instead of fresh ones.
    #[arg(long)]
    tls_ca_file: Option<std::path::PathBuf>,
    /// This process's certificate (PEM), signed by the CA.
    #[arg(long)]
    tls_cert_file: Option<std::path::PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long)]
    tls_key_file: Option<std::path::PathBuf>,
    /// Read the token from this file (surrounding whitespace ignored).
    #[arg(long)]
    token_file: Option<std::path::PathBuf>,
    /// Plain TCP: no encryption and no certificates. Only for trusted networks; said loudly
    /// in the logs.
    #[arg(long)]
    insecure: bool,
}

impl SecurityArgs {
    /// The TLS context from the three files, if given (all three or none).
    fn tls_from_files(
        &self,
    ) -> anyhow::Result<Option<std::sync::Arc<rask::distributed::TlsContext>>> {
        match (&self.tls_ca_file, &self.tls_cert_file, &self.tls_key_file) {
            (None, None, None) => Ok(None),
            (Some(ca), Some(cert), Some(key)) => {
                if self.insecure {
                    anyhow::bail!("--insecure and --tls-*-file contradict each other; pick one");
                }
                let creds = rask::distributed::Credentials::from_files(ca, cert, key)?;
                Ok(Some(rask::distributed::TlsContext::new(creds)?))
            }
            _ => anyhow::bail!(
                "give all three of --tls-ca-file, --tls-cert-file and --tls-key-file, or none"
            ),
        }
    }

    /// The token from --token or --token-file (not both).
    fn token(&self, token: Option<String>) -> anyhow::Result<Option<String>> {
        match (token, &self.token_file) {
            (Some(_), Some(_)) => anyhow::bail!("give --token or --token-file, not both"),
            (Some(t), None) => Ok(Some(t)),
            (None, Some(f)) => {
                let t = std::fs::read_to_string(f)
                    .map_err(|e| anyhow::anyhow!("--token-file {}: {e}", f.display()))?;
                let t = t.trim().to_string();
                if t.is_empty() {
                    anyhow::bail!("--token-file {} is empty", f.display());
                }
                Ok(Some(t))
            }
            (None, None) => Ok(None),
        }
    }

    fn warn_if_insecure(&self, role: &str) {
        if self.insecure {
            eprintln!(
                "rask {role}: WARNING: --insecure: plain TCP, no encryption, no certificates. \
                 Anyone on the network can read the data and, without a token, submit work."
            );
        }
    }
}

#[derive(Subcommand)]
enum Dataset {
    /// Frames for the array tutorial: one `frame-NNNNN.npy` (2-D f64, NumPy format 1.0) per
    /// frame, a spot circling over the frames plus uniform noise.
    Frames {
        /// Directory to write into (created if needed; existing frames are overwritten).
        #[arg(long)]
        dir: std::path::PathBuf,
        /// Number of frames.
        #[arg(long, default_value_t = 1000)]
        n: usize,
        /// Seed of the noise; the same seed gives byte-identical files.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Rows per frame.
        #[arg(long, default_value_t = array_tutorial::FRAME_SHAPE.0)]
        rows: usize,
        /// Columns per frame.
        #[arg(long, default_value_t = array_tutorial::FRAME_SHAPE.1)]
        cols: usize,
    },
    /// nycflights-like flights: one `YYYY.csv` and/or `YYYY.parquet` per year.
    Flights {
        #[arg(long)]
        dir: std::path::PathBuf,
        /// Years, `1990-1999` or one year.
        #[arg(long, default_value = "1990-1999", value_parser = parse_years)]
        years: std::ops::RangeInclusive<i64>,
        #[arg(long, default_value_t = 2_000_000)]
        rows_per_year: usize,
        #[arg(long, value_enum, default_value_t = FormatArg::Both)]
        format: FormatArg,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// nyc-taxi-like trips: `yellow-part-NNN.parquet`.
    Taxi {
        #[arg(long)]
        dir: std::path::PathBuf,
        #[arg(long, default_value_t = 8)]
        files: usize,
        #[arg(long, default_value_t = 500_000)]
        rows_per_file: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Daily stock prices: one `SYMBOL.jsonl` per symbol.
    Stocks {
        #[arg(long)]
        dir: std::path::PathBuf,
        #[arg(long, default_value_t = 10)]
        symbols: usize,
        #[arg(long, default_value_t = 1000)]
        days: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

use rask::distributed::parse_bytes;

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Csv,
    Parquet,
    Both,
}

/// `1990-1999` or `1995`.
fn parse_years(s: &str) -> Result<std::ops::RangeInclusive<i64>, String> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: i64 = a
        .trim()
        .parse()
        .map_err(|_| format!("bad year `{a}` in `{s}`"))?;
    let b: i64 = b
        .trim()
        .parse()
        .map_err(|_| format!("bad year `{b}` in `{s}`"))?;
    if a > b {
        return Err(format!("empty year range `{s}`"));
    }
    Ok(a..=b)
}

#[derive(Clone, Copy, ValueEnum)]
enum ExecutorArg {
    Sync,
    Threads,
}

fn rask_distributed_start(
    opts: rask::distributed::SchedulerOptions,
) -> anyhow::Result<rask::distributed::SchedulerHandle> {
    Ok(rask::distributed::start_scheduler(opts)?)
}

fn report_written(paths: &[std::path::PathBuf], dir: &std::path::Path, t: Instant) {
    let bytes: u64 = paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "wrote {} files ({:.1} MB) to {} in {:.2} s",
        paths.len(),
        bytes as f64 / 1e6,
        dir.display(),
        t.elapsed().as_secs_f64()
    );
}

fn main() -> anyhow::Result<()> {
    // A worker started by a LocalCluster running this binary takes its role from the
    // environment and never returns from here.
    rask::distributed::init();
    let cli = Cli::parse();
    // Standard error at --log's level; recent lines kept for the dashboard's workers page.
    rask::distributed::init_logging(&cli.log);
    // Ctrl-C stops running computations cleanly: no new task starts, workers are joined.
    ctrlc::set_handler(|| {
        eprintln!("\ninterrupted: cancelling");
        rask::scheduler::interrupt();
        slurm::on_ctrl_c();
    })
    .context("installing the Ctrl-C handler")?;

    match cli.command {
        Command::K8s { cmd } => k8s::run(cmd),
        Command::Slurm { cmd } => slurm::run(cmd),
        Command::Scheduler {
            host,
            port,
            scheduler_file,
            heartbeat_timeout,
            token,
            dashboard,
            security,
        } => {
            if !(heartbeat_timeout.is_finite() && heartbeat_timeout > 0.0) {
                anyhow::bail!("--heartbeat-timeout must be a positive number of seconds");
            }
            let token = security.token(token)?;
            let mode = match security.tls_from_files()? {
                Some(t) => rask::distributed::Security::Tls(t),
                None if security.insecure => rask::distributed::Security::Insecure,
                None => {
                    if scheduler_file.is_none() {
                        anyhow::bail!(
                            "TLS is on by default and the fresh credentials reach workers and \
                             clients through the scheduler file: give --scheduler-file (or \
                             --tls-ca-file/--tls-cert-file/--tls-key-file, or --insecure)"
                        );
                    }
                    rask::distributed::Security::Generate
                }
            };
            security.warn_if_insecure("scheduler");
            let opts = rask::distributed::SchedulerOptions {
                listen: format!("{host}:{port}"),
                heartbeat_timeout: Duration::from_secs_f64(heartbeat_timeout),
                token,
                scheduler_file,
                dashboard,
                security: mode,
                ..Default::default()
            };
            let handle = rask_distributed_start(opts)?;
            println!("rask scheduler listening at {}", handle.address());
            if let Some(url) = handle.dashboard_url() {
                println!("dashboard at {url}/status");
            }
            handle.join();
            Ok(())
        }
        Command::Worker {
            address,
            scheduler_file,
            nthreads,
            memory_limit,
            listen,
            contact_host,
            name,
            token,
            security,
        } => {
            let token = security.token(token)?;
            let files_tls = security.tls_from_files()?;
            let (address, file_token, file_tls) = match (address, scheduler_file) {
                (Some(a), None) => (a, None, None),
                (None, Some(f)) => {
                    let sf = rask::distributed::read_scheduler_file(&f)?;
                    let tls = sf.tls_context()?;
                    if tls.is_none() && !security.insecure {
                        anyhow::bail!(
                            "{} is an insecure cluster's scheduler file: pass --insecure to \
                             join it over plain TCP",
                            f.display()
                        );
                    }
                    (sf.address, sf.token, tls)
                }
                (Some(_), Some(_)) => {
                    anyhow::bail!("give the scheduler's address or --scheduler-file, not both")
                }
                (None, None) => {
                    anyhow::bail!("give the scheduler's address or --scheduler-file")
                }
            };
            let mut opts = rask::distributed::WorkerOptions::new(address);
            if let Some(n) = nthreads {
                if n == 0 {
                    anyhow::bail!("--nthreads must be at least 1");
                }
                opts.nthreads = n;
            }
            opts.memory_limit = memory_limit;
            opts.listen = listen;
            opts.contact_host = contact_host;
            if let Some(n) = name {
                opts.name = n;
            }
            opts.token = token.or(file_token);
            opts.tls = files_tls.or(file_tls);
            opts.insecure = security.insecure;
            security.warn_if_insecure("worker");
            match rask::distributed::run_worker(opts)? {
                rask::distributed::WorkerExit::Closed => Ok(()),
                rask::distributed::WorkerExit::Restart(reason) => {
                    eprintln!("rask worker: restarting: {reason}");
                    std::process::exit(rask::distributed::RESTART_EXIT_CODE)
                }
            }
        }
        Command::Demo {
            executor,
            pause_ms,
            tasks,
            svg,
            quick,
            dashboard,
            dashboard_linger,
        } => {
            let executor = match executor {
                ExecutorArg::Sync => Executor::Sync,
                ExecutorArg::Threads => Executor::Threaded,
            };
            let (pause, tasks) = if quick {
                (Duration::from_millis(pause_ms.min(50)), tasks.min(20_000))
            } else {
                (Duration::from_millis(pause_ms), tasks)
            };
            let mut config = Config::builtin().with_executor(executor);
            if let Some(at) = &dashboard {
                config = config.with_dashboard(at)?;
                println!(
                    "dashboard at {}/status",
                    config.dashboard_url().unwrap_or_default()
                );
            }
            demo(config, pause, tasks, svg, quick)?;
            if dashboard.is_some() && dashboard_linger > 0 {
                println!("dashboard stays up for {dashboard_linger} s");
                std::thread::sleep(Duration::from_secs(dashboard_linger));
            }
            Ok(())
        }
        Command::Datasets {
            dataset:
                Dataset::Flights {
                    dir,
                    years,
                    rows_per_year,
                    format,
                    seed,
                },
        } => {
            let t = Instant::now();
            let opts = datasets::FlightsOptions {
                years,
                rows_per_year,
                seed,
                format: match format {
                    FormatArg::Csv => datasets::Format::Csv,
                    FormatArg::Parquet => datasets::Format::Parquet,
                    FormatArg::Both => datasets::Format::Both,
                },
                ..Default::default()
            };
            let paths = datasets::write_flights(&dir, &opts)?;
            report_written(&paths, &dir, t);
            Ok(())
        }
        Command::Datasets {
            dataset:
                Dataset::Taxi {
                    dir,
                    files,
                    rows_per_file,
                    seed,
                },
        } => {
            let t = Instant::now();
            let paths = datasets::write_taxi(&dir, files, rows_per_file, seed)?;
            report_written(&paths, &dir, t);
            Ok(())
        }
        Command::Datasets {
            dataset:
                Dataset::Stocks {
                    dir,
                    symbols,
                    days,
                    seed,
                },
        } => {
            let t = Instant::now();
            let paths = datasets::write_stocks(&dir, symbols, days, seed)?;
            report_written(&paths, &dir, t);
            Ok(())
        }
        Command::Datasets {
            dataset:
                Dataset::Frames {
                    dir,
                    n,
                    seed,
                    rows,
                    cols,
                },
        } => {
            let t = Instant::now();
            let paths = array_tutorial::write_frames(&dir, n, rows, cols, seed)?;
            let bytes: u64 = paths
                .iter()
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .sum();
            println!(
                "wrote {n} frames of {rows}x{cols} f64 ({:.1} MB) to {} in {:.2} s",
                bytes as f64 / 1e6,
                dir.display(),
                t.elapsed().as_secs_f64()
            );
            Ok(())
        }
    }
}

fn demo(
    config: Config,
    pause: Duration,
    n_tasks: usize,
    svg: Option<std::path::PathBuf>,
    quick: bool,
) -> anyhow::Result<()> {
    let executor = config.executor;
    let threads = executor.num_threads();
    println!(
        "rask demo: {threads} thread(s), slow functions sleep {} ms\n",
        pause.as_millis()
    );
    let mut rows: Vec<(String, String, Duration, Option<Duration>)> = Vec::new();

    let step = tutorial::inc_add(pause, &config)?;
    println!("1. add(inc(1), inc(2)) = {}", step.value);
    rows.push((
        "inc/add".into(),
        step.value.to_string(),
        step.parallel,
        Some(step.sequential),
    ));

    let data: Vec<i64> = (1..=8).collect();
    let step = tutorial::parallel_loop(&data, pause, &config)?;
    println!("2. sum(inc(x) for x in 1..=8) = {}", step.value);
    rows.push((
        "for-loop".into(),
        step.value.to_string(),
        step.parallel,
        Some(step.sequential),
    ));

    let data: Vec<i64> = (1..=10).collect();
    let step = tutorial::control_flow(&data, pause, &config)?;
    println!(
        "3. sum(double(x) if even else inc(x) for x in 1..=10) = {}",
        step.value
    );
    rows.push((
        "control flow".into(),
        step.value.to_string(),
        step.parallel,
        Some(step.sequential),
    ));

    let data: Vec<i64> = (1..=8).collect();
    let (step, picture) = tutorial::tree_reduction(&data, pause / 4, &config)?;
    println!("4. tree reduction over inc(1..=8) = {}", step.value);
    rows.push((
        "tree reduction".into(),
        step.value.to_string(),
        step.parallel,
        Some(step.sequential),
    ));
    if let Some(path) = &svg {
        picture.save(path)?;
        println!("   graph written to {}", path.display());
    }

    let (batches, per_batch) = (64, 500_000);
    let t = Instant::now();
    let pi = tutorial::monte_carlo_pi(batches, per_batch, 7, &config)?;
    let lazy = t.elapsed();
    let t = Instant::now();
    let eager = tutorial::monte_carlo_pi_eager(batches, per_batch, 7);
    let eager_t = t.elapsed();
    anyhow::ensure!(pi == eager, "lazy and eager estimates differ");
    println!(
        "5. Monte-Carlo pi from {} points = {pi:.5}",
        batches * per_batch
    );
    rows.push((
        "monte-carlo pi".into(),
        format!("{pi:.5}"),
        lazy,
        Some(eager_t),
    ));

    // Scheduling overhead: n independent `inc`s and a pairwise tree of `add`s.
    let total = tutorial::tree_sum(&(0..n_tasks as i64).collect::<Vec<_>>(), Duration::ZERO)?;
    let t = Instant::now();
    let plan = Plan::new(&total, config.optimize)?;
    let n_graph = plan.graph.len();
    let (values, _) = plan.run(&config.clone().with_progress(Progress::Auto))?;
    let elapsed = t.elapsed();
    let sum = *values[0].get::<i64>(&"total")?;
    let expected: i64 = (0..n_tasks as i64).map(|x| x + 1).sum();
    anyhow::ensure!(
        sum == expected,
        "overhead workload gave {sum}, expected {expected}"
    );
    println!(
        "6. {n_graph} trivial tasks in {:.1} ms = {:.2} us/task",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e6 / n_graph as f64
    );
    rows.push((format!("{n_graph} tasks"), sum.to_string(), elapsed, None));

    // Arrays: the tutorial's linspace sum, and its normal mean at a size that runs in a
    // moment (the full 20000 x 20000 is `--example array_normal_mean`).
    let (n, chunk) = (1_000_000, 1000);
    let t = Instant::now();
    let total = array_tutorial::linspace_sum(n, chunk, &config)?;
    let elapsed = t.elapsed();
    let exact = array_tutorial::linspace_sum_exact(n);
    anyhow::ensure!(
        (total - exact).abs() <= 1e-9 * exact,
        "linspace sum gave {total}, expected {exact}"
    );
    println!("7. linspace(1, 10, {n}, chunks={chunk}).sum() = {total:.1}");
    rows.push(("linspace sum".into(), format!("{total:.1}"), elapsed, None));

    // Quick mode stays small: in a debug build the sampling itself is slow.
    let (n, chunk, step) = if quick {
        (1000, 250, 100)
    } else {
        (4000, 1000, 100)
    };
    let t = Instant::now();
    let means = array_tutorial::normal_mean(n, chunk, step, 42, &config)?;
    let lazy = t.elapsed();
    let t = Instant::now();
    let eager = array_tutorial::normal_mean_eager(n, chunk, step, 42);
    let eager_t = t.elapsed();
    let diff = array_tutorial::max_rel_diff(&means, &eager);
    anyhow::ensure!(
        diff <= 1e-10,
        "rask and ndarray normal means differ by {diff}"
    );
    let grand = means.mean().unwrap_or(f64::NAN);
    println!(
        "8. normal(10, 0.1, ({n}, {n}), chunks={chunk}).mean(axis=0)[::{step}]: {} means, average {grand:.5}",
        means.len()
    );
    rows.push((
        "normal mean".into(),
        format!("{grand:.5}"),
        lazy,
        Some(eager_t),
    ));

    println!(
        "\n{:<16} {:>14} {:>10} {:>12}",
        "workload", "result", "rask", "sequential"
    );
    for (name, result, t, seq) in rows {
        let seq = seq.map_or_else(|| "-".to_string(), |s| format!("{:.3} s", s.as_secs_f64()));
        println!(
            "{name:<16} {result:>14} {:>8.3} s {seq:>12}",
            t.as_secs_f64()
        );
    }
    Ok(())
}
