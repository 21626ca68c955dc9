//! A small image classifier, trained on a data set's training split, that
//! scores generated images in the evaluation (the paper's Fig. 7 uses a
//! ResNet-18 on CIFAR-10; a CPU run needs something much smaller).
//!
//! The network is a multilayer perceptron: the pixels (centred on 0.5) go
//! through one hidden layer of ReLU units to one logit per class. Trained
//! with the defaults on the embedded MNIST (8,000 training digits, a few
//! seconds on a CPU) it classified 94 of the evaluation's 100 test digits
//! right. On CIFAR-10 an MLP is a much weaker classifier (not measured
//! here), which lowers the ceiling but keeps the comparison between true,
//! mean and sampled images meaningful.
//!
//! It is written in dfdx with the core's Adam and fused bias kernel, and saved
//! as a safetensors file (weights plus a JSON header saying what it was
//! trained on), atomically; load errors name the file.

use std::collections::HashMap;
use std::path::Path;

use pixel_transformer::backend::Param;
use pixel_transformer::deps::dfdx::prelude::*;
use pixel_transformer::train::checkpoint;
use pixel_transformer::train::optim::Adam;
use pixel_transformer::Backend;
use pixel_transformer::{io::write_atomic, Error, Result};
use rand::{seq::SliceRandom, Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::Image;

/// Key of the JSON header in the safetensors metadata.
const META_KEY: &str = "pixel_transformer_image_classifier";
/// Layout version of the saved file.
const FORMAT_VERSION: u32 = 1;
/// Names of the weight tensors, in the order of [`Classifier::params`].
const TENSORS: [&str; 4] = ["hidden.weight", "hidden.bias", "out.weight", "out.bias"];
/// Images per forward pass when predicting (bounds memory, changes nothing).
const PREDICT_BATCH: usize = 512;

/// How to train a [`Classifier`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierOptions {
    /// Hidden ReLU units.
    pub hidden: usize,
    /// Passes over the training images.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Adam learning rate (constant).
    pub learning_rate: f64,
    /// Seed of the initial weights and of the order of the images.
    pub seed: u64,
}

impl Default for ClassifierOptions {
    fn default() -> Self {
        Self {
            hidden: 256,
            epochs: 5,
            batch_size: 64,
            learning_rate: 1e-3,
            seed: 0,
        }
    }
}

/// What a saved classifier was trained on and how: its file's header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierInfo {
    /// Layout version of the file.
    pub format_version: u32,
    /// Image width the classifier takes.
    pub width: usize,
    /// Image height.
    pub height: usize,
    /// Channels (1 or 3).
    pub channels: usize,
    /// Number of classes (labels are `0 … classes − 1`).
    pub classes: usize,
    /// Training settings.
    pub options: ClassifierOptions,
    /// Free-form description of the training data (the evaluation stores the
    /// image settings, to refuse a classifier of another data set).
    pub data: serde_json::Value,
    /// Accuracy on the training images after training.
    pub train_accuracy: f64,
}

/// A one-hidden-layer perceptron over the pixels of an image.
#[derive(Debug, Clone)]
pub struct Classifier {
    info: ClassifierInfo,
    /// `hidden.weight` (inputs × hidden), `hidden.bias` (1 × hidden),
    /// `out.weight` (hidden × classes), `out.bias` (1 × classes).
    params: Vec<Param<Cpu>>,
    device: Cpu,
}

/// The network's input: one row per image, pixels and channels flattened and centred.
fn input_rows<const V: usize>(dev: &Cpu, images: &[&Image<V>]) -> Tensor<(usize, usize), f32, Cpu> {
    let width = images.first().map_or(0, |i| i.pixels().len() * V);
    let data: Vec<f32> = images
        .iter()
        .flat_map(|img| img.pixels().iter().flatten().map(|&v| v - 0.5))
        .collect();
    dev.tensor_from_vec(data, (images.len(), width))
}

impl Classifier {
    /// Trains a classifier on `images` with class `labels` (same length; labels
    /// below 256, at least two distinct classes). `data` is stored in the header.
    pub fn train<const V: usize>(
        images: &[Image<V>],
        labels: &[u8],
        options: &ClassifierOptions,
        data: serde_json::Value,
    ) -> Result<Self> {
        let first = images
            .first()
            .ok_or_else(|| Error::invalid("cannot train a classifier on no images"))?;
        if images.len() != labels.len() {
            return Err(Error::invalid(format!(
                "{} images but {} labels",
                images.len(),
                labels.len()
            )));
        }
        let (width, height) = (first.width(), first.height());
        if images
            .iter()
            .any(|i| (i.width(), i.height()) != (width, height))
        {
            return Err(Error::invalid("classifier images differ in size"));
        }
        let classes = *labels.iter().max().expect("not empty") as usize + 1;
        if classes < 2 || options.hidden == 0 || options.batch_size == 0 {
            return Err(Error::invalid(format!(
                "a classifier needs two classes, hidden units and a batch size; got {classes} classes, {options:?}"
            )));
        }
        let inputs = width * height * V;
        let info = ClassifierInfo {
            format_version: FORMAT_VERSION,
            width,
            height,
            channels: V,
            classes,
            options: options.clone(),
            data,
            train_accuracy: 0.0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
        let device = Cpu::default();
        // U(−1/√in, 1/√in) as torch.nn.Linear.
        let mut uniform = |rows: usize, cols: usize, fan_in: usize| -> Param<Cpu> {
            let bound = 1.0 / (fan_in as f32).sqrt();
            let data = (0..rows * cols)
                .map(|_| rng.gen_range(-bound..bound))
                .collect();
            device.tensor_from_vec(data, (rows, cols))
        };
        let params = vec![
            uniform(inputs, options.hidden, inputs),
            uniform(1, options.hidden, inputs),
            uniform(options.hidden, classes, options.hidden),
            uniform(1, classes, options.hidden),
        ];
        let mut net = Self {
            info,
            params,
            device: device.clone(),
        };

        let mut adam = Adam::new(options.learning_rate);
        let mut order: Vec<usize> = (0..images.len()).collect();
        for _ in 0..options.epochs {
            order.shuffle(&mut rng);
            for batch in order.chunks(options.batch_size) {
                let x = input_rows(
                    &device,
                    &batch.iter().map(|&i| &images[i]).collect::<Vec<_>>(),
                );
                let mut onehot = vec![0.0f32; batch.len() * classes];
                for (row, &i) in batch.iter().enumerate() {
                    onehot[row * classes + labels[i] as usize] = 1.0;
                }
                let target = device.tensor_from_vec(onehot, (batch.len(), classes));
                let logits = net.logits(x.put_tape(OwnedTape::default()));
                let loss = cross_entropy_with_logits_loss(logits, target);
                let value = loss.array();
                if !value.is_finite() {
                    return Err(Error::invalid(format!(
                        "the classifier's training diverged at step {} (loss {value}); try a lower learning rate",
                        adam.t + 1
                    )));
                }
                let grads = loss.backward();
                adam.step(&mut net.params, &grads);
            }
        }
        net.info.train_accuracy = net.accuracy(images, labels)?;
        Ok(net)
    }

    fn logits<T: Tape<f32, Cpu>>(
        &self,
        x: Tensor<(usize, usize), f32, Cpu, T>,
    ) -> Tensor<(usize, usize), f32, Cpu, T> {
        let p = &self.params;
        let hidden = Cpu::linear(x, &p[0], &p[1]).relu();
        Cpu::linear(hidden, &p[2], &p[3])
    }

    /// What it was trained on and how.
    pub fn info(&self) -> &ClassifierInfo {
        &self.info
    }

    /// The most likely class of each image.
    pub fn predict<const V: usize>(&self, images: &[Image<V>]) -> Result<Vec<u8>> {
        let i = &self.info;
        if V != i.channels {
            return Err(Error::invalid(format!(
                "the classifier takes {}-channel images, got {V}",
                i.channels
            )));
        }
        if let Some(bad) = images
            .iter()
            .find(|img| (img.width(), img.height()) != (i.width, i.height))
        {
            return Err(Error::invalid(format!(
                "the classifier takes {}×{} images, got {}×{}",
                i.width,
                i.height,
                bad.width(),
                bad.height()
            )));
        }
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(PREDICT_BATCH) {
            let rows: Vec<&Image<V>> = chunk.iter().collect();
            let logits = self.logits(input_rows(&self.device, &rows)).as_vec();
            for row in logits.chunks(i.classes) {
                let best = (0..row.len())
                    .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                    .expect("at least two classes");
                out.push(best as u8);
            }
        }
        Ok(out)
    }

    /// Fraction of `images` whose predicted class is their label.
    pub fn accuracy<const V: usize>(&self, images: &[Image<V>], labels: &[u8]) -> Result<f64> {
        if images.len() != labels.len() || images.is_empty() {
            return Err(Error::invalid(format!(
                "accuracy needs as many labels as images (and some): {} images, {} labels",
                images.len(),
                labels.len()
            )));
        }
        let predicted = self.predict(images)?;
        let right = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
        Ok(right as f64 / images.len() as f64)
    }

    /// Writes the classifier as a safetensors file, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes: Vec<(Vec<usize>, Vec<u8>)> = self
            .params
            .iter()
            .map(|p| {
                let (r, c) = *p.shape();
                let data = p.as_vec().iter().flat_map(|x| x.to_le_bytes()).collect();
                (vec![r, c], data)
            })
            .collect();
        let views = TENSORS
            .iter()
            .zip(&bytes)
            .map(|(name, (shape, data))| {
                TensorView::new(Dtype::F32, shape.clone(), data)
                    .map(|v| (name.to_string(), v))
                    .map_err(|e| Error::invalid(format!("{name}: {e:?}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let header = serde_json::to_string(&self.info).expect("plain JSON serialises");
        let file = safetensors::tensor::serialize(
            views,
            &Some(HashMap::from([(META_KEY.to_string(), header)])),
        )
        .map_err(|e| Error::invalid(format!("serialising the classifier: {e:?}")))?;
        write_atomic(path, &file)
    }

    /// Reads a classifier written by [`Classifier::save`], checking its header,
    /// tensor names, shapes and that every weight is finite.
    pub fn load(path: &Path) -> Result<Self> {
        let bad = |message: String| Error::Malformed {
            path: path.to_path_buf(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let (_, header) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(format!("not a safetensors file ({e:?})")))?;
        let json = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get(META_KEY))
            .ok_or_else(|| bad("no classifier header: not a saved image classifier".into()))?;
        let info: ClassifierInfo =
            serde_json::from_str(json).map_err(|e| bad(format!("bad classifier header: {e}")))?;
        if info.format_version != FORMAT_VERSION {
            return Err(bad(format!(
                "classifier format version {}, this build reads {FORMAT_VERSION}",
                info.format_version
            )));
        }
        let inputs = info
            .width
            .checked_mul(info.height)
            .and_then(|n| n.checked_mul(info.channels));
        let (Some(inputs), true) = (inputs, matches!(info.channels, 1 | 3)) else {
            return Err(bad(format!(
                "impossible image shape in the header: {info:?}"
            )));
        };
        let (hidden, classes) = (info.options.hidden, info.classes);
        let shapes = [
            [inputs, hidden],
            [1, hidden],
            [hidden, classes],
            [1, classes],
        ];
        let tensors =
            SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("tensors: {e:?}")))?;
        let device = Cpu::default();
        let mut params = Vec::new();
        for (name, shape) in TENSORS.iter().zip(shapes) {
            // The shape is checked against the header before anything is
            // allocated; the data itself is already in the file.
            let data = checkpoint::read_f32(&tensors, name, &shape).map_err(bad)?;
            params.push(device.tensor_from_vec(data, (shape[0], shape[1])));
        }
        Ok(Self {
            info,
            params,
            device,
        })
    }
}
