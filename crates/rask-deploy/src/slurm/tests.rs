//! The job script's contents and the checks on options, without a SLURM (the tests against a
//! real one are in `crates/rask/tests/slurm`).

use std::path::Path;

use super::*;

fn argument_of(e: &RaskError) -> Option<&str> {
    match e.root_cause() {
        RaskError::InvalidArgument { name, .. } => Some(name.as_str()),
        _ => None,
    }
}

#[track_caller]
fn assert_bad(opts: SlurmOptions, argument: &str) {
    let e = opts
        .job_script(Path::new("/shared/sched"))
        .expect_err("bad options are refused");
    assert_eq!(argument_of(&e), Some(argument), "{e}");
    assert!(e.to_string().contains(argument), "{e}");
}

#[test]
fn default_script_runs_this_executable_in_the_worker_role() {
    let s = SlurmOptions::new()
        .job_script(Path::new("/shared/run/sched"))
        .unwrap();
    let exe = std::env::current_exe().unwrap();
    assert!(s.starts_with("#!/usr/bin/env bash\n"), "{s}");
    for line in [
        "#SBATCH --job-name=rask-worker",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks=1",
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --mem=1024M",
        "#SBATCH --time=00:30:00",
        "#SBATCH --output=/shared/run/rask-worker-%j.out",
        "export RASK_WORKER_SCHEDULER_FILE=/shared/run/sched",
        "export RASK_WORKER_NTHREADS=1",
        &format!("export RASK_WORKER_MEMORY_LIMIT={}", 1u64 << 30),
        &format!(
            "rask_worker env RASK_WORKER_NAME=\"slurm-${{SLURM_JOB_ID}}-0\" {} &",
            sh_quote(&exe.display().to_string())
        ),
    ] {
        assert!(s.lines().any(|l| l == line), "missing {line:?} in\n{s}");
    }
    assert!(
        !s.contains("--partition") && !s.contains("--account"),
        "{s}"
    );
    assert_eq!(s.matches("rask_worker env").count(), 1, "{s}");
    assert!(s.ends_with("wait\n"), "{s}");
    // A memory restart (exit code 75) starts the worker again.
    assert!(s.contains("-eq 75 ]"), "{s}");
}

#[test]
fn processes_share_the_cores_and_memory_of_a_job() {
    let opts = SlurmOptions::new()
        .cores(4)
        .processes(2)
        .memory("8GB")
        .queue("debug")
        .account("proj-1")
        .walltime("1-02:00:00")
        .job_name("flights")
        .extra_directive("--exclusive")
        .extra_directive("#SBATCH --qos=high")
        .prologue("module load rask")
        .log_directory("/shared/logs")
        .worker(WorkerCommand::RaskCli {
            path: "/opt/rask/bin/rask".into(),
        });
    let s = opts.job_script(Path::new("/shared/my sched")).unwrap();
    let lines: Vec<&str> = s.lines().collect();
    let at = |l: &str| {
        lines
            .iter()
            .position(|x| *x == l)
            .unwrap_or_else(|| panic!("missing {l:?} in\n{s}"))
    };
    at("#SBATCH --job-name=flights");
    at("#SBATCH --partition=debug");
    at("#SBATCH --account=proj-1");
    at("#SBATCH --cpus-per-task=4");
    at("#SBATCH --mem=7630M");
    at("#SBATCH --output=/shared/logs/flights-%j.out");
    // Extra directives come after the generated ones (the last one wins in sbatch).
    assert!(at("#SBATCH --time=1-02:00:00") < at("#SBATCH --exclusive"));
    assert!(at("#SBATCH --exclusive") < at("#SBATCH --qos=high"));
    // The prologue runs before the workers start.
    let w0 = at(
        "rask_worker /opt/rask/bin/rask worker --scheduler-file '/shared/my sched' --nthreads 2 \
         --memory-limit 4000000000 --name \"slurm-${SLURM_JOB_ID}-0\" &",
    );
    let w1 = at(
        "rask_worker /opt/rask/bin/rask worker --scheduler-file '/shared/my sched' --nthreads 2 \
         --memory-limit 4000000000 --name \"slurm-${SLURM_JOB_ID}-1\" &",
    );
    assert!(at("module load rask") < w0 && w0 < w1 && w1 < at("wait"));
    assert_eq!(opts.threads_per_worker(), 2);
}

#[test]
fn a_program_of_ones_own_gets_its_arguments_quoted() {
    let s = SlurmOptions::new()
        .worker(WorkerCommand::Program {
            path: "/shared/bin/my program".into(),
            args: vec!["--mode".into(), "it's".into()],
        })
        .job_script(Path::new("/shared/sched"))
        .unwrap();
    assert!(
        s.contains(
            "rask_worker env RASK_WORKER_NAME=\"slurm-${SLURM_JOB_ID}-0\" '/shared/bin/my \
             program' --mode 'it'\\''s' &"
        ),
        "{s}"
    );
}

#[test]
fn bad_options_are_refused_naming_the_option() {
    assert_bad(SlurmOptions::new().cores(0), "cores");
    assert_bad(SlurmOptions::new().processes(0), "processes");
    assert_bad(SlurmOptions::new().cores(4).processes(3), "processes");
    assert_bad(SlurmOptions::new().cores(1).processes(2), "processes");
    assert_bad(SlurmOptions::new().memory("lots"), "memory");
    assert_bad(SlurmOptions::new().memory("4XB"), "memory");
    assert_bad(SlurmOptions::new().memory("0"), "memory");
    assert_bad(SlurmOptions::new().walltime("abc"), "walltime");
    assert_bad(SlurmOptions::new().walltime("1:60:00"), "walltime");
    assert_bad(SlurmOptions::new().walltime("0"), "walltime");
    assert_bad(SlurmOptions::new().walltime("1-24:00:00"), "walltime");
    assert_bad(SlurmOptions::new().walltime(""), "walltime");
    assert_bad(SlurmOptions::new().queue("two words"), "queue");
    assert_bad(SlurmOptions::new().account(""), "account");
    assert_bad(SlurmOptions::new().job_name("a\"b"), "job_name");
    assert_bad(
        SlurmOptions::new().extra_directive("--exclusive\nrm -rf /"),
        "extra_directives",
    );
    assert_bad(
        SlurmOptions::new().extra_directive("  "),
        "extra_directives",
    );
    assert_bad(SlurmOptions::new().prologue("a\nb"), "prologue");
    assert_bad(
        SlurmOptions::new().worker(WorkerCommand::RaskCli { path: "".into() }),
        "worker",
    );
    let e = SlurmOptions::new()
        .walltime("abc")
        .validate()
        .unwrap_err()
        .to_string();
    assert!(e.contains("`abc`") && e.contains("HH:MM:SS"), "{e}");
}

#[test]
fn walltimes_in_slurm_forms() {
    assert_eq!(parse_walltime("00:30:00").unwrap(), 1800);
    assert_eq!(parse_walltime("90").unwrap(), 5400);
    assert_eq!(parse_walltime("10:30").unwrap(), 630);
    assert_eq!(parse_walltime("1-00:00:00").unwrap(), 86400);
    assert_eq!(parse_walltime("2-12").unwrap(), 2 * 86400 + 12 * 3600);
    assert_eq!(parse_walltime("1-01:30").unwrap(), 86400 + 5400);
    assert_eq!(parse_walltime("48:00:00").unwrap(), 48 * 3600);
    for bad in ["1:2:3:4", "-1", "1-", "1.5", "aa:bb:cc", "00:00:00"] {
        assert!(parse_walltime(bad).is_err(), "{bad}");
    }
}

#[test]
fn sizes_parse_like_the_cli() {
    assert_eq!(parse_bytes("4GB").unwrap(), 4_000_000_000);
    assert_eq!(parse_bytes("512MiB").unwrap(), 512 << 20);
    assert_eq!(parse_bytes("1.5G").unwrap(), 1_500_000_000);
    assert_eq!(parse_bytes("1000").unwrap(), 1000);
    assert!(parse_bytes("-1GB").is_err());
}

#[test]
fn a_missing_sbatch_names_it_and_how_to_install_it() {
    let opts = SlurmOptions::new().commands(SlurmCommands {
        sbatch: "rask-no-such-sbatch".into(),
        ..SlurmCommands::default()
    });
    let e = SlurmCluster::new(opts)
        .err()
        .expect("no cluster without sbatch")
        .to_string();
    assert!(
        e.contains("rask-no-such-sbatch") && e.contains("apt-get install slurm-client"),
        "{e}"
    );
    let e = require(Path::new("/nonexistent/sbatch"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/sbatch"), "{e}");
}

#[test]
fn bad_options_are_refused_before_anything_starts() {
    let e = SlurmCluster::new(SlurmOptions::new().walltime("abc"))
        .err()
        .expect("refused");
    assert_eq!(argument_of(&e), Some("walltime"));
}

#[test]
fn srun_tasks_from_slurm_variables() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    let t = SrunTask::from_vars(vars(&[
        ("SLURM_PROCID", "2"),
        ("SLURM_NTASKS", "3"),
        ("SLURM_JOB_ID", "77"),
        ("SLURM_STEP_ID", "1"),
        ("SLURM_CPUS_PER_TASK", "4"),
    ]))
    .unwrap();
    assert_eq!(
        t,
        SrunTask {
            rank: 2,
            ntasks: 3,
            job_id: "77".into(),
            step_id: "1".into(),
            cpus_per_task: Some(4),
        }
    );
    let file = SrunOptions::default().scheduler_file_for(&t).unwrap();
    assert!(file.is_absolute() && file.ends_with("rask-scheduler-77.1"));

    let e = SrunTask::from_vars(vars(&[("SLURM_NTASKS", "3")])).unwrap_err();
    assert_eq!(argument_of(&e), Some("SLURM_PROCID"));
    assert!(e.to_string().contains("srun"), "{e}");
    let e = SrunTask::from_vars(vars(&[
        ("SLURM_PROCID", "0"),
        ("SLURM_NTASKS", "1"),
        ("SLURM_JOB_ID", "5"),
    ]))
    .unwrap_err();
    assert_eq!(argument_of(&e), Some("SLURM_NTASKS"));
    let e = SrunTask::from_vars(vars(&[
        ("SLURM_PROCID", "3"),
        ("SLURM_NTASKS", "3"),
        ("SLURM_JOB_ID", "5"),
    ]))
    .unwrap_err();
    assert_eq!(argument_of(&e), Some("SLURM_PROCID"));
    let e = SrunTask::from_vars(vars(&[
        ("SLURM_PROCID", "x"),
        ("SLURM_NTASKS", "3"),
        ("SLURM_JOB_ID", "5"),
    ]))
    .unwrap_err();
    assert_eq!(argument_of(&e), Some("SLURM_PROCID"));
}

#[test]
fn adapt_asks_for_a_thread_per_unfinished_task_within_bounds() {
    assert_eq!(adapt_target(0, 4, 0, 10), 0);
    assert_eq!(adapt_target(0, 4, 1, 10), 1);
    assert_eq!(adapt_target(1, 4, 0, 10), 1);
    assert_eq!(adapt_target(9, 4, 0, 10), 3);
    assert_eq!(adapt_target(1000, 4, 0, 10), 10);
    assert_eq!(adapt_target(5, 0, 0, 10), 5);
}

#[test]
fn squeue_lines_and_job_states() {
    let jobs = parse_squeue("12 RUNNING\n13 PENDING\n\n14 COMPLETING\n");
    assert_eq!(jobs.len(), 3);
    assert_eq!(
        jobs[1],
        SlurmJob {
            id: "13".into(),
            state: "PENDING".into()
        }
    );
    assert!(jobs[0].is_active() && jobs[1].is_active() && !jobs[2].is_active());
}

#[test]
fn shell_quoting() {
    assert_eq!(sh_quote("/a/b-c_d.e"), "/a/b-c_d.e");
    assert_eq!(sh_quote("a b"), "'a b'");
    assert_eq!(sh_quote("it's"), "'it'\\''s'");
    assert_eq!(sh_quote(""), "''");
    assert_eq!(sh_quote("$HOME"), "'$HOME'");
}
