//! One trainer for every domain.
//!
//! Each step draws a batch of fresh examples (random signal, random `|S|`,
//! random continuous positions), runs the model, and takes an Adam step on the
//! distribution's loss. The data of step `k` comes from ChaCha stream `k` of
//! the run's seed, so a run resumed from a checkpoint at step `k` sees exactly
//! the batches the uninterrupted run would have seen, and with the weights
//! and Adam moments restored it reproduces the same loss sequence.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use dfdx::prelude::*;

use crate::Backend;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{
    checkpoint,
    data::{draw_example, Example},
    optim::Adam,
    TrainSettings,
};
use crate::{Domain, Dropout, Error, Model, ModelInput, OutputDistribution, Result, Split};

/// Options of [`train`] that do not change the result, only what is written and shown.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Train until this many steps are done in total.
    pub steps: u64,
    /// Folder for the checkpoint and the `train.jsonl` log.
    pub out_dir: PathBuf,
    /// Save a checkpoint every this many steps (and always at the end).
    pub checkpoint_every: u64,
    /// Also keep a weights-only copy of each checkpoint in
    /// `snapshots/step-NNNNNN/` under the output folder (to average late
    /// snapshots later, see [`crate::train::checkpoint::average`]); otherwise each
    /// checkpoint replaces the last.
    pub keep_snapshots: bool,
    /// Measure held-out loss every this many steps (0 = never).
    pub eval_every: u64,
    /// Held-out batches per measurement.
    pub eval_batches: usize,
    /// Show a progress bar.
    pub progress: bool,
    /// Test hook: make the loss of this step NaN, to exercise the divergence guard.
    pub inject_nan_at: Option<u64>,
}

impl TrainOptions {
    /// Sensible defaults writing to `out_dir`.
    pub fn new(steps: u64, out_dir: impl Into<PathBuf>) -> Self {
        Self {
            steps,
            out_dir: out_dir.into(),
            checkpoint_every: 500,
            keep_snapshots: false,
            eval_every: 250,
            eval_batches: 4,
            progress: true,
            inject_nan_at: None,
        }
    }
}

/// A model with its optimizer and position in training.
pub struct TrainState<const P: usize, const V: usize, D: Backend, O: OutputDistribution<V>> {
    /// The model being trained.
    pub model: Model<P, V, D, O>,
    /// Adam's state.
    pub optimizer: Adam<D>,
    /// Steps completed.
    pub step: u64,
    /// The run's settings.
    pub settings: TrainSettings,
}

/// One line of `train.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// Step number (1-based: the step just completed).
    pub step: u64,
    /// Training loss of that step's batch.
    pub loss: f32,
    /// Held-out loss, on the lines where it was measured.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub heldout_loss: Option<f32>,
    /// Wall-clock seconds since this process started training.
    pub elapsed_s: f64,
}

impl<const P: usize, const V: usize, D: Backend, O: OutputDistribution<V>> TrainState<P, V, D, O> {
    /// A fresh model and optimizer.
    pub fn new(model: Model<P, V, D, O>, settings: TrainSettings) -> Self {
        let optimizer = Adam::new(settings.learning_rate);
        Self {
            model,
            optimizer,
            step: 0,
            settings,
        }
    }

    /// Restores a training checkpoint written by [`train`].
    pub fn resume(path: &Path, domain_name: &str, device: &D) -> Result<Self> {
        Self::from_checkpoint(
            path,
            checkpoint::load::<P, V, D, O>(path, domain_name, device)?,
        )
    }

    /// The training state held by an already loaded checkpoint (read from `path`).
    pub fn from_checkpoint(path: &Path, loaded: checkpoint::Loaded<P, V, D, O>) -> Result<Self> {
        let optimizer = loaded.optimizer.ok_or_else(|| Error::Checkpoint {
            path: checkpoint::checkpoint_file(path),
            message: "holds weights only (no optimizer state), so training cannot resume from it"
                .into(),
        })?;
        Ok(Self {
            model: loaded.model,
            optimizer,
            step: loaded.meta.step,
            settings: loaded.meta.training,
        })
    }
}

/// The batch of step `step`: a pure function of the seed and the step number.
pub fn batch_for_step<const P: usize, const V: usize, Dm: Domain<P, V>>(
    domain: &Dm,
    settings: &TrainSettings,
    split: Split,
    step: u64,
) -> Vec<Example<P, V>> {
    let mut rng =
        ChaCha8Rng::seed_from_u64(settings.seed ^ if split == Split::Test { 0x7e57 } else { 0 });
    rng.set_stream(step);
    (0..settings.batch_size)
        .map(|_| draw_example(domain, split, &settings.sets, &mut rng))
        .collect()
}

fn inputs<const P: usize, const V: usize>(
    batch: &[Example<P, V>],
) -> (Vec<ModelInput<'_, P, V>>, Vec<[f32; V]>) {
    let inputs = batch
        .iter()
        .map(|e| ModelInput {
            observed: &e.observed,
            queries: &e.queries,
        })
        .collect();
    let targets = batch
        .iter()
        .flat_map(|e| e.targets.iter().copied())
        .collect();
    (inputs, targets)
}

/// Mean loss of a batch without gradients.
pub fn batch_loss<const P: usize, const V: usize, D: Backend, O: OutputDistribution<V>>(
    model: &Model<P, V, D, O>,
    batch: &[Example<P, V>],
) -> Result<f32> {
    let (inputs, targets) = inputs(batch);
    let head = model.forward(&inputs, NoneTape)?;
    Ok(model.distribution().loss(head, &targets)?.as_vec()[0])
}

/// One optimisation step on `batch`: forward pass (with `dropout`, if any),
/// loss, backward pass, Adam update. Returns the batch's loss. A non-finite loss is
/// [`Error::Diverged`] (numbered `optimizer.t + 1`) and leaves the model untouched.
pub fn train_step<const P: usize, const V: usize, D: Backend, O: OutputDistribution<V>>(
    model: &mut Model<P, V, D, O>,
    optimizer: &mut Adam<D>,
    batch: &[Example<P, V>],
    dropout: Option<Dropout>,
) -> Result<f32> {
    let (inputs, targets) = inputs(batch);
    let head = model.forward_with_dropout(&inputs, OwnedTape::default(), dropout)?;
    let loss = model.distribution().loss(head, &targets)?;
    let value = loss.as_vec()[0];
    if !value.is_finite() {
        return Err(Error::Diverged {
            step: optimizer.t + 1,
            loss: value,
            kept: "the model was left as it was before the step".into(),
        });
    }
    let grads = loss.backward();
    optimizer.step(model.params_mut(), &grads);
    Ok(value)
}

/// Trains `state` on `domain` until `options.steps` steps are done, writing
/// checkpoints and the log under `options.out_dir`. Returns the log lines of this call.
pub fn train<
    const P: usize,
    const V: usize,
    Dm: Domain<P, V>,
    D: Backend,
    O: OutputDistribution<V>,
>(
    domain: &Dm,
    state: &mut TrainState<P, V, D, O>,
    options: &TrainOptions,
) -> Result<Vec<LogLine>> {
    state.settings.validate()?;
    let sets = &state.settings.sets;
    // Refuse sizes whose passes cannot fit before drawing any example.
    let batch = state.settings.batch_size;
    crate::backend::memory::check(
        crate::model::memory::pass_bytes(
            state.model.config(),
            batch,
            sets.max_observed,
            sets.queries,
            true,
            D::FUSED_ATTENTION,
        ),
        || {
            format!(
                "training on batches of {batch} with |S| up to {} and |Q| = {}",
                sets.max_observed, sets.queries
            )
        },
    )?;
    let log_path = options.out_dir.join("train.jsonl");
    if state.step == 0 {
        // A fresh run replaces whatever run the folder held (the command
        // line asks first): its checkpoint goes now, with its log below, so
        // a failure before the first save cannot leave the old checkpoint
        // beside the new log.
        for old in [
            checkpoint::checkpoint_file(&options.out_dir),
            options.out_dir.join("checkpoint.json"),
        ] {
            match std::fs::remove_file(&old) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io(&old, e))
                }
                _ => {}
            }
        }
    }
    let mut log = open_log(&log_path, state.step)?;
    // The step the folder's checkpoint holds (none yet for a fresh run).
    let mut saved = (state.step > 0).then_some(state.step);
    // What to say, and how to leave the log, when a step's loss is not finite.
    let diverged = |step: u64, loss: f32, saved: Option<u64>| -> Error {
        let kept = match saved {
            Some(s) => format!(
                "the last good checkpoint (step {s}) was kept in {}, and the log trimmed back to it",
                options.out_dir.display()
            ),
            None => "no checkpoint had been saved yet, so the run left nothing to resume".into(),
        };
        if let Err(e) = trim_log(&log_path, saved) {
            return e;
        }
        Error::Diverged { step, loss, kept }
    };
    let todo = options.steps.saturating_sub(state.step);
    let bar = if options.progress {
        ProgressBar::new(todo)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {per_sec}  ETA {eta}  {msg}")
            .expect("static template"),
    );
    let start = Instant::now();
    let mut lines = Vec::new();
    let mut smoothed: Option<f32> = None;
    let mut heldout: Option<Vec<Vec<Example<P, V>>>> = None;
    while state.step < options.steps {
        if options.inject_nan_at == Some(state.step + 1) {
            bar.abandon();
            return Err(diverged(state.step + 1, f32::NAN, saved));
        }
        let batch = batch_for_step(domain, &state.settings, Split::Train, state.step);
        state.optimizer.learning_rate = state.settings.learning_rate_at(state.step);
        let dropout = state.settings.dropout_at(state.step);
        let value = match train_step(&mut state.model, &mut state.optimizer, &batch, dropout) {
            Ok(v) => v,
            Err(Error::Diverged { step, loss, .. }) => {
                bar.abandon();
                return Err(diverged(step, loss, saved));
            }
            Err(e) => {
                bar.abandon();
                return Err(e);
            }
        };
        state.step += 1;

        let heldout_loss = if options.eval_every > 0 && state.step % options.eval_every == 0 {
            // The held-out batches are the same at every measurement: draw them once.
            let heldout = heldout.get_or_insert_with(|| {
                (0..options.eval_batches.max(1) as u64)
                    .map(|k| batch_for_step(domain, &state.settings, Split::Test, k))
                    .collect::<Vec<_>>()
            });
            let mut total = 0.0;
            for batch in heldout.iter() {
                total += batch_loss(&state.model, batch)?;
            }
            Some(total / heldout.len() as f32)
        } else {
            None
        };
        let line = LogLine {
            step: state.step,
            loss: value,
            heldout_loss,
            elapsed_s: start.elapsed().as_secs_f64(),
        };
        // Flushed every step, so `tail -f train.jsonl` follows a run live
        // (one small write per step is nothing next to a training step).
        writeln!(
            log,
            "{}",
            serde_json::to_string(&line).expect("log line serialises")
        )
        .and_then(|()| log.flush())
        .map_err(|e| Error::io(&log_path, e))?;
        lines.push(line);
        smoothed = Some(smoothed.map_or(value, |s| 0.95 * s + 0.05 * value));
        bar.set_message(format!("loss {:.3}", smoothed.unwrap_or(value)));
        bar.inc(1);

        let stop = super::interrupt::requested();
        if stop || state.step % options.checkpoint_every.max(1) == 0 || state.step == options.steps
        {
            checkpoint::save(
                &options.out_dir,
                &state.model,
                Some(&state.optimizer),
                crate::domain::config_to_json::<P, V, Dm>(&domain.config())?,
                &state.settings,
                state.step,
            )?;
            if options.keep_snapshots {
                checkpoint::save(
                    &snapshot_dir(&options.out_dir, state.step),
                    &state.model,
                    None,
                    crate::domain::config_to_json::<P, V, Dm>(&domain.config())?,
                    &state.settings,
                    state.step,
                )?;
            }
            saved = Some(state.step);
        }
        if stop {
            super::interrupt::clear();
            bar.abandon();
            return Err(Error::Interrupted {
                step: state.step,
                dir: options.out_dir.clone(),
            });
        }
    }
    log.flush().map_err(|e| Error::io(&log_path, e))?;
    bar.finish();
    Ok(lines)
}

/// Where [`TrainOptions::keep_snapshots`] keeps the weights of `step`:
/// `out_dir/snapshots/step-NNNNNN` (zero-padded, so folders sort by step).
pub fn snapshot_dir(out_dir: &Path, step: u64) -> PathBuf {
    out_dir.join("snapshots").join(format!("step-{step:06}"))
}

/// Opens the log for appending, first dropping lines after `step` (left by a
/// run that was killed after its last checkpoint), so the log always matches
/// the checkpoint it continues from.
fn open_log(path: &Path, step: u64) -> Result<std::io::BufWriter<std::fs::File>> {
    let kept = if step == 0 {
        String::new()
    } else {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines()
            .filter(|l| serde_json::from_str::<LogLine>(l).is_ok_and(|x| x.step <= step))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    crate::io::write_atomic(path, kept.as_bytes())?;
    let f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    Ok(std::io::BufWriter::new(f))
}

/// Drops the log's lines after `step`, the step of the checkpoint kept
/// (all of them when none is), so log and checkpoint agree after a failure.
fn trim_log(path: &Path, step: Option<u64>) -> Result<()> {
    match step {
        Some(step) => open_log(path, step).map(|_| ()),
        None => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
            _ => Ok(()),
        },
    }
}

/// Reads a `train.jsonl` log.
pub fn read_log(path: &Path) -> Result<Vec<LogLine>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| Error::Malformed {
                path: path.to_path_buf(),
                message: format!("line {}: {e}", i + 1),
            })
        })
        .collect()
}

/// Draws `out_dir/train.jsonl` (training loss per step, held-out loss where
/// measured) as `training_curve.png` and `.svg` in `out_dir`. Returns the files
/// written; none when there is no log (e.g. a downloaded checkpoint).
pub fn plot_training_curve(out_dir: &Path) -> Result<Vec<PathBuf>> {
    use crate::plot::{plot_lines, LineChart, Series};
    let log = out_dir.join("train.jsonl");
    if !log.exists() {
        return Ok(Vec::new());
    }
    let lines = read_log(&log)?;
    if lines.is_empty() {
        return Ok(Vec::new());
    }
    let chart = LineChart {
        title: "training curve".into(),
        x_label: "step".into(),
        y_label: "loss".into(),
        log_x: false,
        log_y: false,
        series: vec![
            Series {
                name: "train loss".into(),
                points: lines
                    .iter()
                    .map(|l| (l.step as f64, l.loss as f64))
                    .collect(),
                dashed: false,
            },
            Series {
                name: "held-out loss".into(),
                points: lines
                    .iter()
                    .filter_map(|l| l.heldout_loss.map(|h| (l.step as f64, h as f64)))
                    .collect(),
                dashed: false,
            },
        ],
    };
    let mut written = Vec::new();
    for ext in ["png", "svg"] {
        let path = out_dir.join(format!("training_curve.{ext}"));
        plot_lines(&path, &chart)?;
        written.push(path);
    }
    Ok(written)
}
