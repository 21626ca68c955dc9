//! Adam, written against the model's flat parameter list.
//!
//! dfdx ships an Adam, but its moment buffers are private, so they could not
//! be saved in a checkpoint; resuming would then restart the optimizer and
//! break "a resumed run reproduces the uninterrupted one". This one keeps its
//! moments as ordinary tensors, in the same order as the parameters.

use dfdx::prelude::*;

use crate::backend::Param;
use crate::backend::{AdamStep, Backend};

/// Adam optimizer state (Kingma & Ba, 2015), without weight decay.
#[derive(Debug, Clone)]
pub struct Adam<D: Backend> {
    /// Learning rate.
    pub learning_rate: f64,
    /// Exponential decay of the first and second moment estimates.
    pub betas: [f64; 2],
    /// Added to the denominator for numerical stability.
    pub eps: f64,
    /// Number of updates made so far.
    pub t: u64,
    /// First moments, one per parameter (empty until the first update).
    pub m: Vec<Param<D>>,
    /// Second moments, one per parameter.
    pub v: Vec<Param<D>>,
}

impl<D: Backend> Adam<D> {
    /// A fresh optimizer with PyTorch's default betas and epsilon.
    pub fn new(learning_rate: f64) -> Self {
        Self {
            learning_rate,
            betas: [0.9, 0.999],
            eps: 1e-8,
            t: 0,
            m: Vec::new(),
            v: Vec::new(),
        }
    }

    /// Applies one update to `params` from `grads`.
    pub fn step(&mut self, params: &mut [Param<D>], grads: &Gradients<f32, D>) {
        let grads = params.iter().map(|p| grads.get(p)).collect();
        self.step_with(params, grads);
    }

    /// Applies one update to `params` from `grads`, one per parameter in
    /// order (gradients summed over micro-batches or averaged over ranks).
    pub fn step_with(&mut self, params: &mut [Param<D>], grads: Vec<Param<D>>) {
        if self.m.len() != params.len() {
            self.m = params
                .iter()
                .map(|p| p.device().zeros_like(p.shape()))
                .collect();
            // Not `self.m.clone()`: clones share storage, and the first
            // in-place update would then copy every buffer to separate them.
            self.v = params
                .iter()
                .map(|p| p.device().zeros_like(p.shape()))
                .collect();
        }
        self.t += 1;
        let [beta1, beta2] = self.betas.map(|b| b as f32);
        let h = AdamStep {
            step: self.learning_rate as f32 / (1.0 - beta1.powi(self.t as i32)),
            beta1,
            beta2,
            c2: 1.0 - beta2.powi(self.t as i32),
            eps: self.eps as f32,
        };
        for (((p, m), v), g) in params
            .iter_mut()
            .zip(&mut self.m)
            .zip(&mut self.v)
            .zip(grads)
        {
            D::adam_update(p, g, m, v, h);
        }
    }
}
