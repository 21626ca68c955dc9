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
    distributed::{self, FlatGradients, Ranks},
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
    /// With [`TrainOptions::inject_nan_at`]: only on this rank (default: every rank).
    pub inject_nan_rank: Option<usize>,
    /// Micro-batches per rank and step (`--accumulate`): each rank's share
    /// of a batch goes through the model this many pieces at a time, their
    /// gradients summed before one Adam step, so a large batch needs the
    /// memory of a piece. The batch must split evenly.
    pub accumulate: usize,
    /// Gather every rank's gradients and add them in rank order
    /// (`--deterministic`): `N` ranks then give weights bit-identical to one
    /// process with `accumulate = N`. Costs `N` times the all-reduce's traffic.
    pub deterministic: bool,
    /// The ranks sharing each batch ([`Ranks::single`] unless the program
    /// runs under `mpirun`, see [`crate::train::launch`]). Only rank 0
    /// writes the log, the checkpoints and the progress bar.
    pub ranks: Ranks,
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
            inject_nan_rank: None,
            accumulate: 1,
            deterministic: false,
            ranks: Ranks::single(),
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
///
/// With several [`TrainOptions::ranks`], every rank calls this with the
/// same state and options; each takes its share of every batch, and rank 0
/// alone writes. An error every rank meets together (a non-finite loss
/// anywhere, a stop request, a batch that does not split) is returned on
/// every rank; one only this rank meets mid-run ends all ranks at once
/// ([`Ranks::abort`]), since the others would wait for it forever.
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
    let ranks = &options.ranks;
    let sets = &state.settings.sets;
    let batch = state.settings.batch_size;
    let micro = distributed::micro_batch(batch, ranks.size(), options.accumulate)?;
    // Refuse sizes whose passes cannot fit before drawing any example.
    crate::backend::memory::check(
        crate::model::memory::pass_bytes(
            state.model.config(),
            micro,
            sets.max_observed,
            sets.queries,
            true,
            D::FUSED_ATTENTION,
        ),
        || {
            let pieces = if micro == batch {
                String::new()
            } else {
                format!(" (in pieces of {micro}: --accumulate or ranks)")
            };
            format!(
                "training on batches of {batch}{pieces} with |S| up to {} and |Q| = {}",
                sets.max_observed, sets.queries
            )
        },
    )?;
    // Ranks start from the same seed, hence the same weights; a rank that
    // does not (another build, a damaged copy of the checkpoint) is caught here.
    distributed::check_identical(ranks, "weights at the start", || state_checksum(state))?;
    let writes = ranks.writes();
    let log_path = options.out_dir.join("train.jsonl");
    if state.step == 0 && writes {
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
    let mut log = if writes {
        Some(open_log(&log_path, state.step)?)
    } else {
        None
    };
    // The step the folder's checkpoint holds (none yet for a fresh run).
    let mut saved = (state.step > 0).then_some(state.step);
    // What to say, and how to leave the log, when a step's loss is not finite.
    let diverged = |step: u64, loss: f32, place: &str, saved: Option<u64>| -> Error {
        let kept = match saved {
            Some(s) => format!(
                "the last good checkpoint (step {s}) was kept in {}, and the log trimmed back to it",
                options.out_dir.display()
            ),
            None => "no checkpoint had been saved yet, so the run left nothing to resume".into(),
        };
        if writes {
            if let Err(e) = trim_log(&log_path, saved) {
                return e;
            }
        }
        Error::Diverged {
            step,
            loss,
            kept: format!("{place}{kept}"),
        }
    };
    let todo = options.steps.saturating_sub(state.step);
    let bar = if options.progress && writes {
        ProgressBar::new(todo)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {per_sec}  ETA {eta}  {msg}")
            .expect("static template"),
    );
    let layout = checkpoint::Layout {
        world_size: ranks.size(),
        accumulate: options.accumulate,
        deterministic: options.deterministic,
    };
    let start = Instant::now();
    let mut lines = Vec::new();
    let mut smoothed: Option<f32> = None;
    let mut heldout: Option<Vec<Vec<Example<P, V>>>> = None;
    while state.step < options.steps {
        let batch = batch_for_step(domain, &state.settings, Split::Train, state.step);
        state.optimizer.learning_rate = state.settings.learning_rate_at(state.step);
        let dropout = state.settings.dropout_at(state.step);
        let inject = options.inject_nan_at == Some(state.step + 1)
            && options.inject_nan_rank.map_or(true, |r| r == ranks.rank());
        let (value, stop) = match shared_step(state, &batch, dropout, options, inject) {
            Ok(Step::Done { loss, stop }) => (loss, stop),
            Ok(Step::Diverged { loss, place }) => {
                bar.abandon();
                return Err(diverged(state.step + 1, loss, &place, saved));
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
            // Ranks share the batches and add their losses in batch order.
            let shard = ranks.shard();
            let mut mine = Vec::new();
            for (k, batch) in heldout.iter().enumerate() {
                if shard.mine(k) {
                    mine.push(f64::from(ranks.or_abort(batch_loss(&state.model, batch))?));
                }
            }
            let mut total = 0.0;
            for loss in shard.collect(heldout.len(), 1, mine) {
                total += loss as f32;
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
        if let Some(log) = &mut log {
            // Flushed every step, so `tail -f train.jsonl` follows a run live
            // (one small write per step is nothing next to a training step).
            let written = writeln!(
                log,
                "{}",
                serde_json::to_string(&line).expect("log line serialises")
            )
            .and_then(|()| log.flush())
            .map_err(|e| Error::io(&log_path, e));
            ranks.or_abort(written)?;
        }
        lines.push(line);
        smoothed = Some(smoothed.map_or(value, |s| 0.95 * s + 0.05 * value));
        bar.set_message(format!("loss {:.3}", smoothed.unwrap_or(value)));
        bar.inc(1);

        let stop = stop || (ranks.size() == 1 && super::interrupt::requested());
        if stop || state.step % options.checkpoint_every.max(1) == 0 || state.step == options.steps
        {
            distributed::check_identical(
                ranks,
                &format!("weights at step {}", state.step),
                || state_checksum(state),
            )?;
            if writes {
                ranks.or_abort(save_checkpoints(domain, state, options, layout))?;
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
    if let Some(log) = &mut log {
        log.flush().map_err(|e| Error::io(&log_path, e))?;
    }
    bar.finish();
    Ok(lines)
}

/// The checkpoint of `state`, and its weights-only snapshot when asked for.
fn save_checkpoints<
    const P: usize,
    const V: usize,
    Dm: Domain<P, V>,
    D: Backend,
    O: OutputDistribution<V>,
>(
    domain: &Dm,
    state: &TrainState<P, V, D, O>,
    options: &TrainOptions,
    layout: checkpoint::Layout,
) -> Result<()> {
    let config = crate::domain::config_to_json::<P, V, Dm>(&domain.config())?;
    checkpoint::save_with_layout(
        &options.out_dir,
        &state.model,
        Some(&state.optimizer),
        config.clone(),
        &state.settings,
        state.step,
        layout,
    )?;
    if options.keep_snapshots {
        checkpoint::save_with_layout(
            &snapshot_dir(&options.out_dir, state.step),
            &state.model,
            None,
            config,
            &state.settings,
            state.step,
            layout,
        )?;
    }
    Ok(())
}

/// A checksum of the weights and Adam's moments, to compare across ranks.
fn state_checksum<const P: usize, const V: usize, D: Backend, O: OutputDistribution<V>>(
    state: &TrainState<P, V, D, O>,
) -> u64 {
    let tensors = state
        .model
        .params()
        .iter()
        .chain(&state.optimizer.m)
        .chain(&state.optimizer.v)
        .map(|t| t.as_vec())
        .collect::<Vec<_>>();
    distributed::checksum(tensors.iter().map(Vec::as_slice))
}

/// How a shared step ended.
enum Step {
    /// Every rank took the Adam step; `loss` is the batch's (the mean over
    /// micro-batches) and `stop` whether any rank was asked to stop.
    Done { loss: f32, stop: bool },
    /// A loss was not finite (on the rank `place` names, when there are
    /// several); no rank changed its model.
    Diverged { loss: f32, place: String },
}

/// One step of a batch shared by `options.ranks`, each rank's share in
/// `options.accumulate` micro-batches: forward and backward passes, the
/// exchange of losses (so every rank knows whether to go on), the gradient
/// reduction and the Adam step. One process with one micro-batch takes
/// exactly [`train_step`]'s path.
fn shared_step<const P: usize, const V: usize, D: Backend, O: OutputDistribution<V>>(
    state: &mut TrainState<P, V, D, O>,
    batch: &[Example<P, V>],
    dropout: Option<Dropout>,
    options: &TrainOptions,
    inject_nan: bool,
) -> Result<Step> {
    let ranks = &options.ranks;
    let (n, k) = (ranks.size(), options.accumulate);
    let share = batch.len() / n;
    let mine = &batch[ranks.rank() * share..][..share];
    let model = &mut state.model;
    // Gradients stay where they are (as tensors) for one process with one
    // micro-batch, and on GPUs that average them there; otherwise they are
    // summed on the host, in order, where every path adds them alike.
    let on_device = n > 1 && !options.deterministic && distributed::averages_on_device::<D>(ranks);
    let as_tensors = (n == 1 && k == 1) || on_device;
    let mut summed: Option<Vec<crate::backend::Param<D>>> = None;
    let mut flat = FlatGradients::default();
    let mut losses = Vec::with_capacity(k);
    let mut failure = None;
    for (i, piece) in mine.chunks(share / k).enumerate() {
        let (inputs, targets) = inputs(piece);
        let dropout = distributed::micro_dropout(dropout, ranks.rank() * k + i);
        let loss = match model
            .forward_with_dropout(&inputs, OwnedTape::default(), dropout)
            .and_then(|head| model.distribution().loss(head, &targets))
        {
            Ok(loss) => loss,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        let value = if inject_nan {
            f32::NAN
        } else {
            loss.as_vec()[0]
        };
        losses.push(value);
        if !value.is_finite() {
            // The step will not be taken: no gradients needed.
            break;
        }
        let grads = loss.backward();
        let grads: Vec<_> = model.params().iter().map(|p| grads.get(p)).collect();
        if as_tensors {
            summed = Some(match summed.take() {
                None => grads,
                Some(sum) => sum.into_iter().zip(grads).map(|(a, b)| a + b).collect(),
            });
        } else {
            flat.add(&grads);
        }
    }
    losses.resize(k, f32::NAN);
    let agreed = distributed::agree(
        ranks,
        &losses,
        super::interrupt::requested(),
        failure.is_some(),
    );
    if let Some(e) = failure {
        return Err(e);
    }
    if !agreed.failed.is_empty() {
        return Err(Error::Ranks(format!(
            "rank {} of {n} failed at step {} (its error is above); every rank stops",
            agreed.failed[0],
            state.step + 1
        )));
    }
    if let Some(&(rank, loss)) = agreed.non_finite(k).first() {
        let place = if n > 1 {
            format!("it was rank {rank}'s (of {n}), and every rank stopped; ")
        } else {
            String::new()
        };
        return Ok(Step::Diverged { loss, place });
    }
    let grads = match summed {
        Some(mut grads) if on_device => {
            if k > 1 {
                grads = grads.into_iter().map(|g| g / k as f32).collect();
            }
            ranks.or_abort(distributed::device_average(ranks, &mut grads))?;
            grads
        }
        Some(grads) => grads,
        None => {
            distributed::reduce_gradients(ranks, &mut flat, options.deterministic, n * k);
            flat.to_params(model.params())
        }
    };
    state.optimizer.step_with(model.params_mut(), grads);
    Ok(Step::Done {
        loss: agreed.loss(),
        stop: agreed.stop,
    })
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
