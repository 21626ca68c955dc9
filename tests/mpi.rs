//! Data-parallel training under `mpirun` with two local ranks (the `mpi`
//! feature): `cargo test --release --features mpi --test mpi`.
//!
//! Each test starts this test binary under `mpirun -n 2`, where the ignored
//! test [`rank`] runs the polynomial program's command line (the same code
//! as `examples/polynomial.rs`) with the arguments the test put in
//! [`ARGS_ENV`]. One-process runs go through the same command line in this
//! process. Without `mpirun` on PATH the tests say so loudly and pass,
//! unless `PIXEL_TRANSFORMER_REQUIRE_MPIRUN` is set (CI sets it).
#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pixel_transformer::deps::dfdx::prelude::Cpu;
use pixel_transformer::train::checkpoint;
use pixel_transformer::train::trainer::read_log;
use pixel_transformer::BinnedMixture;
use pixel_transformer_polynomial::PolynomialDomain;

// The tutorial's audio clips: a domain with the generic held-out evaluation.
#[allow(dead_code)] // the example's `main` is not called here
#[path = "../examples/custom_signal.rs"]
mod custom_signal;

/// The rank's command line, its arguments separated by `\x1f`.
const ARGS_ENV: &str = "PT_MPI_TEST_ARGS";
/// The rank's program: `polynomial` (the default), `image`, `sdf`, `video`
/// or `audio` (the tutorial's).
const PROGRAM_ENV: &str = "PT_MPI_TEST_PROGRAM";
/// Longest any `mpirun` of these tests may take before it counts as stuck.
const LIMIT: Duration = Duration::from_secs(180);

/// One rank of a run the tests start (not a test of its own).
#[test]
#[ignore = "a rank of the runs the other tests start under mpirun"]
fn rank() {
    let args = std::env::var(ARGS_ENV).expect("started by the other tests, with PT_MPI_TEST_ARGS");
    let program = std::env::var(PROGRAM_ENV).unwrap_or_else(|_| "polynomial".into());
    let outcome = run_program(&program, &args.split('\x1f').collect::<Vec<_>>());
    // Exit with the program's status (MPI has ended by now).
    let code = pixel_transformer::cli::report(outcome);
    std::process::exit(if code == std::process::ExitCode::SUCCESS {
        0
    } else {
        1
    });
}

/// Whether `mpirun` is here; if not, says so loudly (a failure where it
/// must be, see the module's notes).
fn have_mpirun() -> bool {
    let found = Command::new("mpirun")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("PIXEL_TRANSFORMER_REQUIRE_MPIRUN").is_none(),
            "mpirun is not on PATH, and PIXEL_TRANSFORMER_REQUIRE_MPIRUN asks for it"
        );
        eprintln!("SKIPPED: mpirun is not on PATH (install openmpi-bin); this test did not run");
    }
    found
}

/// `mpirun` with two local ranks of [`rank`], each running `args`; `dirs`
/// gives each rank its own working directory (Open MPI's MPMD form).
fn mpirun(args: &[&str], dirs: Option<[&Path; 2]>, env: &[(&str, &str)]) -> Output {
    mpirun_n(2, args, dirs, env)
}

/// [`mpirun`] with `n` ranks.
fn mpirun_n(n: usize, args: &[&str], dirs: Option<[&Path; 2]>, env: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new("mpirun");
    // As root (CI), Open MPI wants to be told; more ranks than cores are fine.
    cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env(ARGS_ENV, args.join("\x1f"))
        .args(["--oversubscribe"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let rank_args = [
        exe.to_str().unwrap(),
        "--exact",
        "rank",
        "--include-ignored",
        "--nocapture",
        "--test-threads",
        "1",
    ];
    match dirs {
        None => {
            cmd.args(["-n", &n.to_string()]).args(rank_args);
        }
        Some([a, b]) => {
            cmd.args(["-n", "1", "-wdir", a.to_str().unwrap()])
                .args(rank_args)
                .arg(":")
                .args(["-n", "1", "-wdir", b.to_str().unwrap()])
                .args(rank_args);
        }
    }
    wait(cmd)
}

/// Runs `cmd` to its end, failing the test if it outlives [`LIMIT`].
fn wait(mut cmd: Command) -> Output {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > LIMIT {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {LIMIT:?} (a rank stuck in a collective?); stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The command line of a domain's program (as in `examples/`) on `args`.
fn run_program(program: &str, args: &[&str]) -> anyhow::Result<()> {
    use pixel_transformer::cli::{run_from, run_grey_or_colour_from};
    use pixel_transformer_image::ImageDomain;
    use pixel_transformer_sdf::SdfDomain;
    use pixel_transformer_video::VideoDomain;
    let argv = std::iter::once(program).chain(args.iter().copied());
    match program {
        "polynomial" => run_from::<1, 1, PolynomialDomain, _, _>(argv),
        "image" => {
            run_grey_or_colour_from::<2, ImageDomain<1>, ImageDomain<3>, _, _>(argv).map(|_| ())
        }
        "sdf" => run_from::<3, 1, SdfDomain, _, _>(argv),
        "video" => {
            run_grey_or_colour_from::<3, VideoDomain<1>, VideoDomain<3>, _, _>(argv).map(|_| ())
        }
        "audio" => run_from::<1, 1, custom_signal::AudioDomain, _, _>(argv),
        other => panic!("no program {other}"),
    }
}

/// Runs `args` as one process, here.
fn one_process(args: &[&str]) {
    run_program("polynomial", args).unwrap();
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().unwrap().to_string()
}

/// `train` on the tiny preset: `steps` steps of global batch 8, seed 3.
fn train_args(out: &str, steps: u32, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "train",
        "--preset",
        "tiny",
        "--batch-size",
        "8",
        "--seed",
        "3",
        "--quiet",
        "--out",
        out,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(["--steps".to_string(), steps.to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn losses(dir: &str) -> Vec<f32> {
    read_log(&Path::new(dir).join("train.jsonl"))
        .unwrap()
        .iter()
        .map(|l| l.loss)
        .collect()
}

/// Weights and Adam moments of a checkpoint, and its header.
fn state(dir: &str) -> (Vec<Vec<f32>>, checkpoint::CheckpointMeta) {
    let loaded =
        checkpoint::load::<1, 1, Cpu, BinnedMixture>(Path::new(dir), "polynomial", &Cpu::default())
            .unwrap();
    let adam = loaded.optimizer.unwrap();
    let tensors = loaded
        .model
        .params()
        .iter()
        .chain(&adam.m)
        .chain(&adam.v)
        .map(|t| t.as_vec())
        .collect();
    (tensors, loaded.meta)
}

#[test]
fn two_ranks_follow_one_process_with_the_same_global_batch() {
    if !have_mpirun() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (two, one) = (path(dir.path(), "two"), path(dir.path(), "one"));
    let out = mpirun(
        &strs(&train_args(&two, 40, &["--checkpoint-every", "20"])),
        None,
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    one_process(&strs(&train_args(&one, 40, &["--checkpoint-every", "20"])));
    let (a, b) = (losses(&two), losses(&one));
    assert_eq!(a.len(), 40);
    assert_eq!(a.len(), b.len());
    for (step, (x, y)) in a.iter().zip(&b).enumerate() {
        let rel = (x - y).abs() / y.abs();
        assert!(rel <= 1e-5, "step {}: {x} vs {y} ({rel:e})", step + 1);
    }
    let (_, meta) = state(&two);
    assert_eq!(meta.layout.world_size, 2);
    assert_eq!(meta.step, 40);
    let json = std::fs::read_to_string(Path::new(&two).join("checkpoint.json")).unwrap();
    assert!(json.contains("\"world_size\": 2"), "{json}");
    // One checkpoint, not one per rank.
    let entries: Vec<_> = std::fs::read_dir(&two).unwrap().collect();
    assert_eq!(entries.len(), 3, "checkpoint, its JSON and the log");
}

#[test]
fn deterministic_ranks_are_bit_identical_to_accumulating_micro_batches() {
    if !have_mpirun() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ranks, accumulated) = (path(dir.path(), "ranks"), path(dir.path(), "acc"));
    // Dropout too: each micro-batch draws its own masks, the same both ways.
    let extra = ["--deterministic", "--dropout", "0.1"];
    let out = mpirun(&strs(&train_args(&ranks, 12, &extra)), None, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    one_process(&strs(&train_args(
        &accumulated,
        12,
        &["--accumulate", "2", "--dropout", "0.1"],
    )));
    assert_eq!(losses(&ranks), losses(&accumulated));
    let ((a, meta_a), (b, meta_b)) = (state(&ranks), state(&accumulated));
    assert!(a == b, "weights or Adam moments differ");
    assert!(meta_a.layout.deterministic && meta_a.layout.world_size == 2);
    assert_eq!(meta_b.layout.accumulate, 2);

    // Three ranks: two numbers add the same either way round, three need
    // the order the deterministic mode keeps (MPI's all-reduce may not).
    let (ranks, accumulated) = (path(dir.path(), "ranks3"), path(dir.path(), "acc3"));
    let mut args = train_args(&ranks, 12, &["--deterministic"]);
    args[4] = "12".into();
    let out = mpirun_n(3, &strs(&args), None, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut args = train_args(&accumulated, 12, &["--accumulate", "3"]);
    args[4] = "12".into();
    one_process(&strs(&args));
    assert!(state(&ranks).0 == state(&accumulated).0, "3 ranks");
}

#[test]
fn only_rank_0_writes() {
    if !have_mpirun() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (d0, d1) = (dir.path().join("rank0"), dir.path().join("rank1"));
    std::fs::create_dir_all(&d0).unwrap();
    std::fs::create_dir_all(&d1).unwrap();
    // The main job (train, pictures, evaluation) into a folder relative to
    // each rank's own working directory.
    let args = [
        "--preset",
        "tiny",
        "--steps",
        "6",
        "--batch-size",
        "4",
        "--eval-count",
        "70",
        "--render-count",
        "2",
        "--quiet",
        "--out",
        "run",
    ];
    let out = mpirun(&args, Some([&d0, &d1]), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    for file in ["checkpoint.safetensors", "train.jsonl", "eval.csv"] {
        assert!(
            d0.join("run").join(file).is_file(),
            "rank 0 wrote no {file}"
        );
    }
    let left: Vec<PathBuf> = std::fs::read_dir(&d1)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "rank 1 wrote {left:?}");
    // The report is printed once.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.matches("proper NLL per query").count(),
        1,
        "{stdout}"
    );
}

#[test]
fn evaluation_shared_by_ranks_reports_what_one_process_does() {
    if !have_mpirun() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = path(dir.path(), "run");
    one_process(&strs(&train_args(&run, 5, &[])));
    let (two, one) = (path(dir.path(), "eval2"), path(dir.path(), "eval1"));
    // 150 polynomials: batches of 64, 64 and 22, dealt over the ranks.
    let eval = |out: &str| -> Vec<String> {
        [
            "eval",
            "--checkpoint",
            &run,
            "--eval-count",
            "150",
            "--out",
            out,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let out = mpirun(&strs(&eval(&two)), None, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    one_process(&strs(&eval(&one)));
    let csv = |d: &str| std::fs::read_to_string(Path::new(d).join("eval.csv")).unwrap();
    assert_eq!(csv(&two), csv(&one));
}

#[test]
fn every_domains_benchmark_shared_by_ranks_reports_what_one_process_does() {
    if !have_mpirun() {
        return;
    }
    // The tutorial's audio domain has the generic held-out table, and no
    // shipped checkpoint: a few steps of training make one.
    let audio = tempfile::tempdir().unwrap();
    let audio_run = path(audio.path(), "run");
    run_program(
        "audio",
        &[
            "train", "--preset", "tiny", "--steps", "3", "--quiet", "--out", &audio_run,
        ],
    )
    .unwrap();
    // The shipped checkpoints, on a few held-out items: 9 images (sampling
    // groups of 8 and 1), 3 shapes, 3 clips; the audio run's 200 clips per |S|.
    let runs: [(&str, &[&str]); 4] = [
        (
            "image",
            &[
                "--eval-count",
                "9",
                "--eval-samples",
                "1",
                "--eval-autoregressive",
                "2",
            ],
        ),
        ("sdf", &["--eval-count", "3"]),
        ("video", &["--eval-count", "3"]),
        ("audio", &[]),
    ];
    for (program, options) in runs {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (path(dir.path(), "one"), path(dir.path(), "two"));
        let checkpoint = if program == "audio" {
            audio_run.as_str()
        } else {
            "pretrained"
        };
        let args = |out: &str| {
            let mut a = vec!["eval", "--checkpoint", checkpoint, "--out", out];
            a.extend(options);
            a.into_iter().map(str::to_string).collect::<Vec<_>>()
        };
        run_program(program, &strs(&args(&one))).unwrap();
        // The image benchmark's classifier is trained once, then read.
        let classifier = Path::new(&one).join("classifier.safetensors");
        if classifier.exists() {
            std::fs::create_dir_all(&two).unwrap();
            std::fs::copy(&classifier, Path::new(&two).join("classifier.safetensors")).unwrap();
        }
        let out = mpirun(&strs(&args(&two)), None, &[(PROGRAM_ENV, program)]);
        assert!(out.status.success(), "{program}: {}", stderr(&out));
        let csv = |d: &str| std::fs::read_to_string(Path::new(d).join("eval.csv")).unwrap();
        assert_eq!(csv(&two), csv(&one), "{program}");
    }
}

#[test]
fn a_killed_two_rank_run_resumes_to_the_uninterrupted_one() {
    if !have_mpirun() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (whole, killed) = (path(dir.path(), "whole"), path(dir.path(), "killed"));
    // The small preset, so that a step takes long enough to kill mid-run.
    let args = |out: &str| {
        let mut a = train_args(out, 60, &["--checkpoint-every", "5"]);
        a[2] = "small".into();
        a
    };
    let out = mpirun(&strs(&args(&whole)), None, &[]);
    assert!(out.status.success(), "{}", stderr(&out));

    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("mpirun")
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env(ARGS_ENV, args(&killed).join("\x1f"))
        .args(["--oversubscribe", "-n", "2"])
        .arg(&exe)
        .args(["--exact", "rank", "--include-ignored", "--nocapture"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it (SIGKILL, to mpirun) once it has saved a checkpoint past step 10.
    let start = Instant::now();
    let saved = || checkpoint::read_meta(Path::new(&killed)).map_or(0, |m| m.step);
    while saved() < 10 {
        assert!(start.elapsed() < LIMIT, "no checkpoint past step 10");
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the kill"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let at = saved();
    assert!(at < 60, "the run finished before it was killed");

    let resume = [
        "train", "--resume", "--out", &killed, "--quiet", // to the run's 60 steps
    ];
    let out = mpirun(&resume, None, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(losses(&killed), losses(&whole), "resumed from step {at}");
    assert!(state(&killed).0 == state(&whole).0, "weights differ");
}

#[test]
fn a_nan_on_one_rank_stops_both_with_one_message() {
    if !have_mpirun() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = path(dir.path(), "run");
    let start = Instant::now();
    let out = mpirun(
        &strs(&train_args(&run, 40, &["--checkpoint-every", "5"])),
        None,
        &[("PIXEL_TRANSFORMER_TEST_NAN_AT", "7:1")],
    );
    let elapsed = start.elapsed();
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
    assert_eq!(
        err.matches("training diverged at step 7: the loss is NaN")
            .count(),
        1,
        "{err}"
    );
    assert!(
        err.contains("rank 1's (of 2), and every rank stopped"),
        "{err}"
    );
    assert!(err.contains("last good checkpoint (step 5)"), "{err}");
    assert_eq!(losses(&run).len(), 5, "log trimmed back to the checkpoint");
}

#[test]
fn a_global_batch_the_ranks_cannot_share_is_refused() {
    if !have_mpirun() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = path(dir.path(), "run");
    let mut args = train_args(&run, 4, &[]);
    args[4] = "7".into();
    let out = mpirun(&strs(&args), None, &[]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("--batch-size 7 is the global batch")
            && err.contains("multiple of 2, such as 6 or 8"),
        "{err}"
    );
    assert!(!Path::new(&run).join("train.jsonl").exists());
}

#[test]
fn another_mpis_launcher_is_refused_naming_the_right_mpirun() {
    if !have_mpirun() {
        return;
    }
    let library = pixel_transformer::train::mpi::Mpi::library();
    // What the other MPI's launcher would have set.
    let (vars, hint): (&[(&str, &str)], &str) = if library.contains("Open MPI") {
        (&[("PMI_SIZE", "2"), ("PMI_RANK", "0")], "mpirun.openmpi")
    } else {
        (&[("OMPI_COMM_WORLD_SIZE", "2")], "mpirun.mpich")
    };
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "rank", "--include-ignored", "--nocapture"])
        .env(ARGS_ENV, "limits")
        .envs(vars.iter().copied());
    let out = wait(cmd);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("built against {library}")) && err.contains(hint),
        "{err}"
    );
}
