//! Checkpoints: one self-describing `.safetensors` file.
//!
//! A checkpoint is a folder holding `checkpoint.safetensors`: the weights, the
//! fixed Fourier frequencies and (for training checkpoints) Adam's moments as
//! tensors, plus a JSON header in the safetensors metadata with everything
//! needed to rebuild the model: format version, crate version, domain config
//! (the domain's `Config` with its name as `type`), architecture, output
//! distribution, training step.
//! A pretty-printed copy of that header is written next to it as
//! `checkpoint.json` for people to read; loading never uses it.
//!
//! One file rather than weights plus a separate JSON: a single atomic rename
//! can then never leave new weights beside old metadata.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dfdx::prelude::*;

use crate::Backend;
use safetensors::tensor::{Dtype as SDtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use super::{optim::Adam, TrainSettings};
use crate::{io::write_atomic, Error, Model, ModelConfig, OutputDistribution, Result};

/// Version of the checkpoint layout; bumped on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;
/// File name of the checkpoint inside its folder.
pub const FILE_NAME: &str = "checkpoint.safetensors";
const META_KEY: &str = "pixel_transformer";

/// Everything in a checkpoint except the tensors.
#[derive(Debug, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Layout version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// Version of the crate that wrote it.
    pub crate_version: String,
    /// Name of the domain (checked before the config is decoded).
    pub domain_name: String,
    /// The domain's settings, as [`crate::domain::config_to_json`] stores
    /// them (read them with [`crate::domain::config_from_json`]).
    pub domain: serde_json::Value,
    /// Position dimensions `P`.
    pub position_dims: usize,
    /// Value dimensions `V`.
    pub value_dims: usize,
    /// Architecture.
    pub model: ModelConfig,
    /// Output distribution (bin centres etc.), as JSON.
    pub distribution: serde_json::Value,
    /// Training settings the run used.
    pub training: TrainSettings,
    /// Training steps completed.
    pub step: u64,
    /// Whether Adam's state is included (training checkpoints) or not (exported weights).
    pub has_optimizer: bool,
    /// How the run that wrote it was spread over processes (one process
    /// in checkpoints written before runs could be spread).
    #[serde(flatten)]
    pub layout: Layout,
}

/// How a training run was spread over processes; its checkpoints record it
/// so that `train --resume` continues the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Layout {
    /// Ranks (`mpirun -n N`) that shared each batch.
    pub world_size: usize,
    /// Micro-batches per rank and step (`--accumulate`).
    pub accumulate: usize,
    /// Whether the ranks' gradients were added in rank order (`--deterministic`).
    pub deterministic: bool,
}

impl Default for Layout {
    /// One process, one batch per step.
    fn default() -> Self {
        Self {
            world_size: 1,
            accumulate: 1,
            deterministic: false,
        }
    }
}

/// The file inside a checkpoint folder (a path to the file itself is accepted too).
pub fn checkpoint_file(path: &Path) -> PathBuf {
    if path.extension().is_some_and(|e| e == "safetensors") {
        path.to_path_buf()
    } else {
        path.join(FILE_NAME)
    }
}

fn f32_bytes(data: &[f32]) -> Vec<u8> {
    data.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes a checkpoint folder atomically (of a run in one process).
pub fn save<const P: usize, const V: usize, D: Backend, O: OutputDistribution<V>>(
    dir: &Path,
    model: &Model<P, V, D, O>,
    optimizer: Option<&Adam<D>>,
    domain: serde_json::Value,
    training: &TrainSettings,
    step: u64,
) -> Result<()> {
    save_with_layout(
        dir,
        model,
        optimizer,
        domain,
        training,
        step,
        Layout::default(),
    )
}

/// [`save`] for a run spread as `layout` says.
pub fn save_with_layout<const P: usize, const V: usize, D: Backend, O: OutputDistribution<V>>(
    dir: &Path,
    model: &Model<P, V, D, O>,
    optimizer: Option<&Adam<D>>,
    domain: serde_json::Value,
    training: &TrainSettings,
    step: u64,
    layout: Layout,
) -> Result<()> {
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, p) in model.param_names().iter().zip(model.params()) {
        let (r, c) = *p.shape();
        let data = p.as_vec();
        // Never replace a good checkpoint with broken weights.
        if data.iter().any(|x| !x.is_finite()) {
            return Err(Error::Checkpoint {
                path: dir.join(FILE_NAME),
                message: format!("refusing to save: parameter `{name}` holds NaN or infinity"),
            });
        }
        tensors.push((format!("param.{name}"), vec![r, c], f32_bytes(&data)));
    }
    let half = model.config().embed_dim / 2;
    tensors.push(("fourier".into(), vec![P, half], f32_bytes(model.fourier())));
    if let Some(adam) = optimizer {
        for (i, name) in model.param_names().iter().enumerate() {
            if let (Some(m), Some(v)) = (adam.m.get(i), adam.v.get(i)) {
                let (r, c) = *m.shape();
                tensors.push((format!("adam.m.{name}"), vec![r, c], f32_bytes(&m.as_vec())));
                tensors.push((format!("adam.v.{name}"), vec![r, c], f32_bytes(&v.as_vec())));
            }
        }
    }
    let meta = CheckpointMeta {
        format_version: FORMAT_VERSION,
        crate_version: env!("CARGO_PKG_VERSION").into(),
        domain_name: domain
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or_default()
            .into(),
        domain,
        position_dims: P,
        value_dims: V,
        model: model.config().clone(),
        distribution: serde_json::to_value(model.distribution())
            .map_err(|e| Error::invalid(e.to_string()))?,
        training: training.clone(),
        step,
        has_optimizer: optimizer.is_some(),
        layout,
    };
    let json = serde_json::to_string(&meta).map_err(|e| Error::invalid(e.to_string()))?;
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, shape, bytes)| {
            let view = TensorView::new(SDtype::F32, shape.clone(), bytes)
                .map_err(|e| Error::invalid(format!("{n}: {e:?}")))?;
            Ok((n.clone(), view))
        })
        .collect::<Result<_>>()?;
    let bytes =
        safetensors::tensor::serialize(views, &Some(HashMap::from([(META_KEY.to_string(), json)])))
            .map_err(|e| Error::invalid(format!("serialising checkpoint: {e:?}")))?;
    write_atomic(&dir.join(FILE_NAME), &bytes)?;
    let pretty = serde_json::to_string_pretty(&meta).map_err(|e| Error::invalid(e.to_string()))?;
    write_atomic(&dir.join("checkpoint.json"), pretty.as_bytes())
}

/// A loaded checkpoint: model, optimizer state (if saved) and header.
#[derive(Debug)]
pub struct Loaded<const P: usize, const V: usize, D: Backend, O: OutputDistribution<V>> {
    /// The rebuilt model with its weights.
    pub model: Model<P, V, D, O>,
    /// Adam's state, if the checkpoint holds it.
    pub optimizer: Option<Adam<D>>,
    /// The header.
    pub meta: CheckpointMeta,
}

/// Reads only the header of a checkpoint.
pub fn read_meta(path: &Path) -> Result<CheckpointMeta> {
    let file = checkpoint_file(path);
    let bytes = std::fs::read(&file).map_err(|e| Error::io(&file, e))?;
    parse_meta(&file, &bytes, None)
}

fn parse_meta(file: &Path, bytes: &[u8], expected_domain: Option<&str>) -> Result<CheckpointMeta> {
    let bad = |message: String| Error::Checkpoint {
        path: file.to_path_buf(),
        message,
    };
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(format!("not a safetensors file ({e:?})")))?;
    let json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .ok_or_else(|| {
            bad("no pixel-transformer header: not a pixel-transformer checkpoint".into())
        })?;
    // Check version and domain before decoding the typed config, so a
    // checkpoint of a domain this program does not know gets a clear message.
    let raw: serde_json::Value =
        serde_json::from_str(json).map_err(|e| bad(format!("header is not JSON: {e}")))?;
    let version = raw.get("format_version").and_then(|v| v.as_u64());
    if version != Some(FORMAT_VERSION as u64) {
        return Err(bad(format!(
            "format version {version:?}, but this build reads version {FORMAT_VERSION} (written by pixel-transformer {})",
            raw.get("crate_version").and_then(|v| v.as_str()).unwrap_or("unknown")
        )));
    }
    let domain = raw
        .get("domain_name")
        .and_then(|d| d.as_str())
        .unwrap_or("unknown");
    if let Some(expected) = expected_domain.filter(|e| *e != domain) {
        return Err(bad(format!(
            "trained on domain `{domain}`, but this is the `{expected}` domain"
        )));
    }
    serde_json::from_value(raw.clone()).map_err(|e| {
        let domain = raw
            .get("domain_name")
            .and_then(|d| d.as_str())
            .unwrap_or("unknown");
        bad(format!("cannot decode the header (domain `{domain}`): {e}"))
    })
}

/// Reads tensor `name` of a safetensors file as finite `f32`s of the given
/// `shape`; the error says what is wrong with it (missing, other dtype or
/// shape, a non-finite value) without the file name, for the caller to add.
/// Shared by model checkpoints and other weights saved the same way (the
/// image crate's classifier).
pub fn read_f32(
    tensors: &SafeTensors<'_>,
    name: &str,
    shape: &[usize],
) -> std::result::Result<Vec<f32>, String> {
    let t = tensors
        .tensor(name)
        .map_err(|_| format!("tensor `{name}` is missing"))?;
    if t.dtype() != SDtype::F32 {
        return Err(format!("tensor `{name}` is {:?}, expected F32", t.dtype()));
    }
    if t.shape() != shape {
        return Err(format!(
            "tensor `{name}` has shape {:?}, expected {shape:?}",
            t.shape()
        ));
    }
    let data: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if let Some(i) = data.iter().position(|x| !x.is_finite()) {
        return Err(format!(
            "tensor `{name}` holds a non-finite value at index {i}"
        ));
    }
    Ok(data)
}

/// Loads the checkpoint at `paths[0]` with its weights replaced by the mean
/// of the weights of every checkpoint in `paths` (uniform weight averaging).
///
/// Averaging a few checkpoints of the same run, taken late in training,
/// cancels part of the step-to-step noise of the last updates and usually
/// predicts held-out data a little better than any one of them. All must
/// share the architecture, the output distribution (value bins) and the
/// Fourier matrix, i.e. descend from one initialisation; otherwise the error
/// names the checkpoint that differs. The header (step, settings) and any
/// optimizer state are those of `paths[0]`.
pub fn average<const P: usize, const V: usize, D: Backend, O: OutputDistribution<V>>(
    paths: &[PathBuf],
    expected_domain: &str,
    device: &D,
) -> Result<Loaded<P, V, D, O>> {
    let (first, rest) = paths
        .split_first()
        .ok_or_else(|| Error::invalid("averaging needs at least one checkpoint"))?;
    let mut base = load::<P, V, D, O>(first, expected_domain, device)?;
    let mut sums: Vec<Vec<f64>> = base
        .model
        .params()
        .iter()
        .map(|p| p.as_vec().into_iter().map(f64::from).collect())
        .collect();
    for path in rest {
        let other = load::<P, V, D, O>(path, expected_domain, device)?;
        let differs = |what: &str| Error::Checkpoint {
            path: checkpoint_file(path),
            message: format!(
                "cannot be averaged with {}: its {what} differs",
                checkpoint_file(first).display()
            ),
        };
        if other.meta.model != base.meta.model {
            return Err(differs("architecture"));
        }
        if other.meta.distribution != base.meta.distribution {
            return Err(differs("output distribution (value bins)"));
        }
        if other.model.fourier() != base.model.fourier() {
            return Err(differs(
                "Fourier matrix (it descends from another initialisation)",
            ));
        }
        for (sum, p) in sums.iter_mut().zip(other.model.params()) {
            sum.iter_mut()
                .zip(p.as_vec())
                .for_each(|(s, x)| *s += f64::from(x));
        }
    }
    let n = paths.len() as f64;
    for (param, sum) in base.model.params_mut().iter_mut().zip(sums) {
        let shape = *param.shape();
        let mean: Vec<f32> = sum.into_iter().map(|s| (s / n) as f32).collect();
        *param = device.tensor_from_vec(mean, shape);
    }
    Ok(base)
}

/// Loads a checkpoint for domain `expected_domain`, checking everything it can:
/// version, domain, dimensions, architecture, tensor names and shapes, and
/// that every weight is finite.
pub fn load<const P: usize, const V: usize, D: Backend, O: OutputDistribution<V>>(
    path: &Path,
    expected_domain: &str,
    device: &D,
) -> Result<Loaded<P, V, D, O>> {
    let file = checkpoint_file(path);
    let bytes = std::fs::read(&file).map_err(|e| Error::io(&file, e))?;
    load_bytes(&bytes, &file, expected_domain, device)
}

/// [`load`] from the bytes of a checkpoint file already in memory (embedded
/// with `include_bytes!`, downloaded, or fed by a fuzzer); `file` names it in
/// errors.
pub fn load_bytes<const P: usize, const V: usize, D: Backend, O: OutputDistribution<V>>(
    bytes: &[u8],
    file: &Path,
    expected_domain: &str,
    device: &D,
) -> Result<Loaded<P, V, D, O>> {
    let bad = |message: String| Error::Checkpoint {
        path: file.to_path_buf(),
        message,
    };
    let meta = parse_meta(file, bytes, Some(expected_domain))?;
    if meta.domain_name != expected_domain {
        return Err(bad(format!(
            "trained on domain `{}`, but this is the `{expected_domain}` domain",
            meta.domain_name
        )));
    }
    if (meta.position_dims, meta.value_dims) != (P, V) {
        return Err(bad(format!(
            "has P = {}, V = {}, expected P = {P}, V = {V}",
            meta.position_dims, meta.value_dims
        )));
    }
    let distribution: O = serde_json::from_value(meta.distribution.clone())
        .map_err(|e| bad(format!("output distribution does not decode: {e}")))?;
    if distribution.head_width() == 0 {
        return Err(bad(
            "the output distribution has no bins (a damaged header): nothing to predict with"
                .into(),
        ));
    }
    // The header is untrusted: check that the file can hold the model it
    // describes before allocating it, so a damaged size fails here instead of
    // exhausting memory.
    meta.model
        .validate()
        .map_err(|e| bad(format!("architecture: {e}")))?;
    let copies = if meta.has_optimizer { 3 } else { 1 };
    let needed = 4 * copies * meta.model.stored_numbers(P, V, distribution.head_width());
    if needed > bytes.len() as u128 {
        return Err(bad(format!(
            "the header describes a model of {needed} bytes of tensors, but the file has only {} bytes: truncated or damaged",
            bytes.len()
        )));
    }
    let mut model = Model::<P, V, D, O>::new(meta.model.clone(), distribution, 0, device)
        .map_err(|e| bad(format!("architecture: {e}")))?;
    let tensors = SafeTensors::deserialize(bytes).map_err(|e| bad(format!("tensors: {e:?}")))?;
    let read = |name: &str, shape: &[usize]| read_f32(&tensors, name, shape).map_err(bad);
    let names = model.param_names().to_vec();
    let expected: Vec<String> = names.iter().map(|n| format!("param.{n}")).collect();
    for name in tensors.names() {
        if name.starts_with("param.") && !expected.iter().any(|e| e == name) {
            return Err(bad(format!(
                "unexpected tensor `{name}`: the architecture differs"
            )));
        }
    }
    for (i, name) in names.iter().enumerate() {
        let (r, c) = *model.params()[i].shape();
        let data = read(&format!("param.{name}"), &[r, c])?;
        model.params_mut()[i] = device.tensor_from_vec(data, (r, c));
    }
    let fourier = read("fourier", &[P, meta.model.embed_dim / 2])?;
    model.set_fourier(fourier)?;
    let optimizer = if meta.has_optimizer {
        let mut adam = Adam::new(meta.training.learning_rate);
        adam.t = meta.step; // the trainer makes exactly one update per step
        for (i, name) in names.iter().enumerate() {
            let (r, c) = *model.params()[i].shape();
            adam.m
                .push(device.tensor_from_vec(read(&format!("adam.m.{name}"), &[r, c])?, (r, c)));
            adam.v
                .push(device.tensor_from_vec(read(&format!("adam.v.{name}"), &[r, c])?, (r, c)));
        }
        Some(adam)
    } else {
        None
    };
    Ok(Loaded {
        model,
        optimizer,
        meta,
    })
}
