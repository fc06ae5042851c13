//! rask on a real SLURM: the one-node cluster `.ci/slurm-setup` configures and starts
//! (slurmctld, slurmd, munge). Without it these tests fail saying so; they never pass by
//! skipping.
//!
//! - `SlurmCluster`: a scheduler in this process, two worker jobs submitted with `sbatch`,
//!   each running this very test binary in the worker role (the same-binary model:
//!   `rask::distributed::init()` in `main` reads `RASK_WORKER_SCHEDULER_FILE`); the flights
//!   groupby runs on them and equals eager polars; dropping the cluster leaves `squeue` empty.
//! - `adapt`: jobs are submitted for pending work and cancelled when the work is done.
//! - srun mode: `sbatch --ntasks=3 --wrap "srun <this binary>"`: task 0 becomes scheduler and
//!   client, tasks 1 and 2 workers; task 0 writes what it computed to a file this test reads.
//!
//! Everything is bounded: a watchdog cancels this run's jobs (`scancel --name`) and fails
//! the run when a test hangs. The tests run one at a time (one queue).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use rask::dataframe::polars::prelude::*;
use rask::dataframe::{Agg, CsvOptions};
use rask::deploy::slurm::{SlurmCluster, SlurmOptions, SrunOptions, WorkerCommand};
use rask::distributed::Client;

type TestResult = Result<(), Failed>;

/// Set in the environment of the srun job: the file task 0 writes its result to.
const SRUN_OUT: &str = "RASK_SLURM_TEST_SRUN_OUT";
/// ... and the scheduler file of the step.
const SRUN_SCHEDULER_FILE: &str = "RASK_SLURM_TEST_SRUN_SCHEDULER_FILE";

fn main() {
    // Worker jobs run this binary: there this call runs the worker and never returns.
    rask::distributed::init();
    if let Ok(out) = std::env::var(SRUN_OUT) {
        srun_task(Path::new(&out));
    }
    let mut args = Arguments::from_args();
    // One SLURM queue, and each test checks that it is empty afterwards.
    args.test_threads = Some(1);
    let tests = vec![
        Trial::test(
            "slurm::two_jobs_run_the_flights_groupby_and_leave_no_job",
            two_jobs_flights_groupby,
        ),
        Trial::test(
            "slurm::adapt_submits_jobs_for_work_and_cancels_them_when_idle",
            adapt_follows_the_load,
        ),
        Trial::test("slurm::srun_mode_task_0_is_scheduler_and_client", srun_mode),
        Trial::test(
            "slurm::jobs_whose_workers_fail_are_reported_not_waited_for",
            failing_workers,
        ),
    ];
    libtest_mimic::run(&args, tests).exit();
}

// ------------------------------------------------------------------ the tasks

/// `x²` and the process that computed it.
#[rask::delayed]
fn square_pid(x: i64, ms: u64) -> (i64, i64) {
    std::thread::sleep(Duration::from_millis(ms));
    (x * x, std::process::id() as i64)
}

// ------------------------------------------------------------------ helpers

fn check(cond: bool, msg: impl std::fmt::Display) -> TestResult {
    if cond {
        Ok(())
    } else {
        Err(msg.to_string().into())
    }
}

fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    f()
}

/// A SLURM command's standard output; an error names the command and what it printed, and
/// says how to get a SLURM when the command is missing.
fn slurm(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd).args(args).output().map_err(|e| {
        format!(
            "running `{cmd} {}`: {e}: these tests need the one-node SLURM that \
             `.ci/slurm-setup` installs and starts (run it as root)",
            args.join(" ")
        )
    })?;
    if !out.status.success() {
        return Err(format!(
            "`{cmd} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `squeue -h` prints nothing within `secs` (the jobs of a test have left the queue). A
/// SLURM that does not answer fails at once, saying how to start one.
fn squeue_empty(secs: u64) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let out = slurm("squeue", &["-h", "-o", "%i %j %T"])
            .map_err(|e| format!("{e}\n(is SLURM running? `.ci/slurm-setup` starts it)"))?;
        if out.trim().is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("squeue still lists jobs after {secs} s:\n{out}").into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A unique job name for this run and test (the watchdog cancels by name).
fn job_name(test: &str) -> String {
    format!("rask-test-{}-{test}", std::process::id())
}

/// Fails the whole run when a test outlives `limit`: cancels the jobs named `name` first, so a
/// hung job never outlives the test.
struct Watchdog {
    done: Arc<AtomicBool>,
}

impl Watchdog {
    fn start(name: &str, limit: Duration) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let done2 = done.clone();
        let name = name.to_string();
        std::thread::spawn(move || {
            let deadline = Instant::now() + limit;
            while Instant::now() < deadline {
                if done2.load(Ordering::Acquire) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            eprintln!("test with jobs {name} still running after {limit:?}: cancelling them");
            let _ = Command::new("scancel")
                .arg(format!("--name={name}"))
                .status();
            std::process::exit(1);
        });
        Watchdog { done }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
    }
}

/// Everything the jobs wrote (for failure messages).
fn logs(dir: &Path) -> String {
    let mut s = String::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().extension().is_some_and(|x| x == "out") {
                s.push_str(&format!(
                    "--- {}\n{}\n",
                    e.path().display(),
                    std::fs::read_to_string(e.path()).unwrap_or_default()
                ));
            }
        }
    }
    s
}

fn slurm_options(dir: &Path, name: &str) -> SlurmOptions {
    SlurmOptions::new()
        .cores(1)
        .processes(1)
        .memory("500MB")
        .walltime("00:05:00")
        .job_name(name)
        .scheduler_file(dir.join("scheduler"))
        .log_directory(dir.join("logs"))
}

// ------------------------------------------------------------------ flights

/// A fixed-seed flights frame: string and int keys, float values with nulls.
fn flights(n: usize, seed: u64) -> DataFrame {
    let origins = ["SFO", "LAX", "JFK", "ORD", "ATL", "SEA", "BOS"];
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(1);
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    let (mut origin, mut delay, mut dist, mut year) = (vec![], vec![], vec![], vec![]);
    for i in 0..n {
        let o = (next() % origins.len() as u32) as usize;
        origin.push(origins[o]);
        delay.push(if next() % 13 == 0 {
            None
        } else {
            Some((next() % 200) as f64 - 30.0)
        });
        dist.push((next() % 3000) as i64 + 100);
        year.push(1990 + (i * 4 / n.max(1)) as i64);
    }
    df!("Year" => year, "Origin" => origin, "DepDelay" => delay, "Distance" => dist).unwrap()
}

/// `df` as one CSV file per year in `dir`.
fn write_years(df: &DataFrame, dir: &Path) -> TestResult {
    for y in 1990..1994i64 {
        let mut part = df.clone().lazy().filter(col("Year").eq(lit(y))).collect()?;
        let mut f = std::fs::File::create(dir.join(format!("{y}.csv")))?;
        CsvWriter::new(&mut f)
            .include_header(true)
            .finish(&mut part)?;
    }
    Ok(())
}

/// Equal frames up to row order, floats within 1e-9 relative.
fn close(got: &DataFrame, want: &DataFrame) -> TestResult {
    let sort = |df: &DataFrame| {
        df.sort(["Origin"], SortMultipleOptions::default())
            .expect("sorting by Origin")
    };
    let (got, want) = (sort(got), sort(want));
    check(
        got.schema() == want.schema() && got.height() == want.height(),
        format!("shapes differ\n got {got}\nwant {want}"),
    )?;
    for (g, w) in got.columns().iter().zip(want.columns()) {
        if g.dtype().is_float() {
            for (a, b) in g.f64()?.iter().zip(w.f64()?.iter()) {
                let ok = match (a, b) {
                    (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                    (a, b) => a == b,
                };
                check(ok, format!("column {}: {a:?} vs {b:?}", g.name()))?;
            }
        } else {
            check(
                g.as_materialized_series()
                    .equals_missing(w.as_materialized_series()),
                format!("column {} differs\n got {got}\nwant {want}", g.name()),
            )?;
        }
    }
    Ok(())
}

/// Two jobs of one worker each join through the scheduler file on the shared filesystem; the
/// flights groupby (mean departure delay per origin, and more) runs on them and equals eager
/// polars; dropping the cluster cancels the jobs and the queue is empty afterwards.
fn two_jobs_flights_groupby() -> TestResult {
    squeue_empty(30)?;
    let name = job_name("groupby");
    let _watchdog = Watchdog::start(&name, Duration::from_secs(100));
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("flights");
    std::fs::create_dir(&data)?;
    let all = flights(4000, 7);
    write_years(&all, &data)?;

    let cluster = SlurmCluster::new(slurm_options(dir.path(), &name))?;
    let script = cluster.job_script();
    check(
        script.contains("RASK_WORKER_SCHEDULER_FILE") && script.contains("--job-name=rask-test"),
        format!("job script:\n{script}"),
    )?;
    cluster.scale(2)?;
    check(
        cluster.submitted().len() == 2,
        format!("submitted {:?}", cluster.submitted()),
    )?;
    if let Err(e) = cluster.wait_for_workers(2, Duration::from_secs(60)) {
        return Err(format!("{e}\n{}", logs(cluster.log_directory())).into());
    }
    let jobs = cluster.jobs()?;
    check(
        jobs.len() == 2 && jobs.iter().all(|j| j.state == "RUNNING"),
        format!("two running jobs: {jobs:?}"),
    )?;

    let client = Client::connect(&cluster.scheduler_file().display().to_string())?;
    // The workers are the jobs' processes: named after their job ids.
    let mut names: Vec<String> = client
        .scheduler_info()?
        .into_iter()
        .map(|w| w.name)
        .collect();
    names.sort();
    let mut want_names: Vec<String> = cluster
        .submitted()
        .iter()
        .map(|id| format!("slurm-{id}-0"))
        .collect();
    want_names.sort();
    check(
        names == want_names,
        format!("workers {names:?}, jobs {want_names:?}"),
    )?;

    let frame = rask::dataframe::read_csv(
        &format!("{}/*.csv", data.display()),
        CsvOptions::default().with_blocksize(4096),
    )?;
    check(frame.npartitions() >= 4, frame.npartitions())?;
    let g = frame
        .filter(col("Distance").gt(lit(200i64)))?
        .groupby(["Origin"])
        .split_every(3)
        .agg([
            Agg::mean("DepDelay").alias("mean"),
            Agg::sum("DepDelay").alias("sum"),
            Agg::count("DepDelay").alias("count"),
            Agg::max("Distance").alias("max"),
        ])?;
    let got = client.compute(&g)?;
    let want = all
        .clone()
        .lazy()
        .filter(col("Distance").gt(lit(200i64)))
        .group_by([col("Origin")])
        .agg([
            col("DepDelay").mean().alias("mean"),
            col("DepDelay").sum().alias("sum"),
            col("DepDelay").count().alias("count"),
            col("Distance").max().alias("max"),
        ])
        .collect()?;
    close(&got, &want)?;
    // Both workers took part: each holds or held some of the reading tasks.
    let info = client.scheduler_info()?;
    check(info.len() == 2, format!("two workers at the end: {info:?}"))?;

    drop(client);
    let submitted = cluster.submitted();
    let file = cluster.scheduler_file().to_path_buf();
    cluster.close()?;
    check(!file.exists(), "close removed the scheduler file")?;
    let left =
        slurm("squeue", &["-h", "-j", &submitted.join(","), "-o", "%i %T"]).unwrap_or_default();
    check(
        left.trim().is_empty(),
        format!("the cluster's jobs are gone after close: {left}"),
    )?;
    squeue_empty(30)
}

/// `adapt(0, 2)`: no job while idle; pending work (6 one-second tasks on one-thread jobs)
/// brings two jobs, no more; they stay while their results are held, and are cancelled once
/// the results are released.
fn adapt_follows_the_load() -> TestResult {
    squeue_empty(30)?;
    let name = job_name("adapt");
    let _watchdog = Watchdog::start(&name, Duration::from_secs(100));
    let dir = tempfile::tempdir()?;
    let cluster = SlurmCluster::new(slurm_options(dir.path(), &name))?;
    cluster.adapt_with(rask::deploy::slurm::AdaptOptions {
        interval: Duration::from_millis(300),
        ..rask::deploy::slurm::AdaptOptions::new(0, 2)
    })?;
    std::thread::sleep(Duration::from_secs(1));
    check(
        cluster.submitted().is_empty(),
        format!("no work, no job: {:?}", cluster.submitted()),
    )?;

    let client = Client::connect(&cluster.scheduler_file().display().to_string())?;
    let squares = client.map(|i| square_pid(i, 1000), 0..6i64)?;
    check(
        eventually(Duration::from_secs(10), || cluster.submitted().len() == 2),
        format!("two jobs for the work: {:?}", cluster.submitted()),
    )?;
    let mut pids = Vec::new();
    for (i, f) in squares.iter().enumerate() {
        match f.result_timeout(Duration::from_secs(60))? {
            Some((sq, pid)) => {
                check(sq == (i * i) as i64, format!("square {i}: {sq}"))?;
                pids.push(pid);
            }
            None => {
                return Err(format!(
                    "square {i} not done within 60 s; jobs {:?}\n{}",
                    cluster.jobs(),
                    logs(cluster.log_directory())
                )
                .into());
            }
        }
    }
    check(
        !pids.contains(&(std::process::id() as i64)),
        "the work ran in the jobs",
    )?;
    check(
        cluster.submitted().len() == 2,
        format!("never more than the maximum: {:?}", cluster.submitted()),
    )?;
    // Idle, but the results are still held on the workers: their jobs stay.
    std::thread::sleep(Duration::from_secs(2));
    let jobs = cluster.jobs()?;
    check(
        jobs.len() == 2,
        format!("jobs holding results stay: {jobs:?}"),
    )?;
    drop(squares);
    check(
        eventually(Duration::from_secs(30), || {
            cluster.jobs().is_ok_and(|j| j.is_empty())
        }),
        format!("idle: jobs cancelled: {:?}", cluster.jobs()),
    )?;
    drop(client);
    cluster.close()?;
    squeue_empty(30)
}

/// Jobs whose worker program exits at once (here `false`): waiting for workers fails as soon
/// as no job is left, saying so and where the job output is, instead of running into its
/// timeout.
fn failing_workers() -> TestResult {
    squeue_empty(30)?;
    let name = job_name("failing");
    let _watchdog = Watchdog::start(&name, Duration::from_secs(100));
    let dir = tempfile::tempdir()?;
    let cluster = SlurmCluster::new(slurm_options(dir.path(), &name).worker(
        WorkerCommand::Program {
            path: "false".into(),
            args: Vec::new(),
        },
    ))?;
    cluster.scale(1)?;
    let started = Instant::now();
    let e = cluster
        .wait_for_workers(1, Duration::from_secs(60))
        .err()
        .ok_or("no worker can join")?
        .to_string();
    check(
        e.contains("no job of this cluster is pending or running")
            && e.contains(&cluster.log_directory().display().to_string()),
        format!("error: {e}"),
    )?;
    check(
        started.elapsed() < Duration::from_secs(30),
        format!("noticed after {:?}", started.elapsed()),
    )?;
    cluster.close()?;
    squeue_empty(30)
}

// ------------------------------------------------------------------ srun mode

/// What each srun task runs: task 0 the scheduler and client, the others workers (they
/// exit inside `initialize`).
fn srun_task(out: &Path) -> ! {
    let file = std::env::var(SRUN_SCHEDULER_FILE).map(PathBuf::from).ok();
    let result = (|| -> rask::Result<String> {
        let cluster = rask::deploy::slurm::initialize(SrunOptions {
            scheduler_file: file,
            ..Default::default()
        })?;
        let expected = cluster.expected_workers();
        cluster.wait_for_workers(expected, Duration::from_secs(60))?;
        let client = Client::connect(&cluster.scheduler_file().display().to_string())?;
        let squares = client.map(|i| square_pid(i, 20), 0..40i64)?;
        let mut total = 0;
        let mut pids = Vec::new();
        for f in &squares {
            let (sq, pid) = f
                .result_timeout(Duration::from_secs(60))?
                .ok_or_else(|| rask::RaskError::msg("a square did not finish within 60 s"))?;
            total += sq;
            pids.push(pid);
        }
        pids.sort();
        pids.dedup();
        let own = std::process::id() as i64;
        Ok(format!(
            "ntasks={} workers={} total={total} worker_processes={} on_task0={}\n",
            cluster.task().ntasks,
            cluster.n_workers(),
            pids.len(),
            pids.contains(&own)
        ))
        // The client, then the cluster: the scheduler closes the workers, tasks 1.. exit.
    })();
    let (text, code) = match result {
        Ok(t) => (t, 0),
        Err(e) => (format!("error: {e}\n"), 1),
    };
    let _ = std::fs::write(out, text);
    std::process::exit(code);
}

/// `sbatch --ntasks=3 --wrap "srun <this binary>"`: task 0 computes a sum of squares on the
/// two workers the other tasks became and writes it down; the job ends by itself when task 0
/// is done, and the queue is empty afterwards.
fn srun_mode() -> TestResult {
    squeue_empty(30)?;
    let name = job_name("srun");
    let _watchdog = Watchdog::start(&name, Duration::from_secs(100));
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("result.txt");
    let exe = std::env::current_exe()?;
    let id = {
        let o = Command::new("sbatch")
            .args([
                "--parsable",
                "--ntasks=3",
                // Three tasks on however few cores the test machine has.
                "--overcommit",
                "--time=00:05:00",
                &format!("--job-name={name}"),
                &format!("--output={}/srun-%j.out", dir.path().display()),
                "--wrap",
                &format!("srun '{}'", exe.display()),
            ])
            .env(SRUN_OUT, &out)
            .env(SRUN_SCHEDULER_FILE, dir.path().join("scheduler"))
            .output()
            .map_err(|e| format!("running sbatch: {e} (run .ci/slurm-setup)"))?;
        check(
            o.status.success(),
            format!("sbatch: {}", String::from_utf8_lossy(&o.stderr)),
        )?;
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    // Cancelled however this test ends.
    struct Cancel(String);
    impl Drop for Cancel {
        fn drop(&mut self) {
            let _ = Command::new("scancel").arg(&self.0).status();
        }
    }
    let _cancel = Cancel(id.clone());
    let ended = eventually(Duration::from_secs(90), || {
        slurm("squeue", &["-h", "-j", &id, "-o", "%T"]).is_ok_and(|s| s.trim().is_empty())
    });
    check(
        ended,
        format!(
            "srun job {id} still queued after 90 s\n{}",
            logs(dir.path())
        ),
    )?;
    let got = std::fs::read_to_string(&out)
        .map_err(|e| format!("task 0 wrote no result ({e})\n{}", logs(dir.path())))?;
    let n = 40i64;
    let want = format!(
        "ntasks=3 workers=2 total={} worker_processes=2 on_task0=false\n",
        (n - 1) * n * (2 * n - 1) / 6
    );
    check(
        got == want,
        format!("task 0 wrote {got:?}, want {want:?}\n{}", logs(dir.path())),
    )?;
    check(
        !dir.path().join("scheduler").exists(),
        "task 0 removed the scheduler file",
    )?;
    squeue_empty(30)
}
