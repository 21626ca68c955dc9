//! Adam, written against the model's flat parameter list.
//!
//! dfdx ships an Adam, but its moment buffers are private, so they could not
//! be saved in a checkpoint; resuming would then restart the optimizer and
//! break "a resumed run reproduces the uninterrupted one". This one keeps its
//! moments as ordinary tensors, in the same order as the parameters.

use dfdx::prelude::*;

use crate::model::Param;

/// Adam optimizer state (Kingma & Ba, 2015), without weight decay.
#[derive(Debug, Clone)]
pub struct Adam<D: Device<f32>> {
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

impl<D: Device<f32>> Adam<D> {
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
        if self.m.len() != params.len() {
            self.m = params
                .iter()
                .map(|p| p.device().zeros_like(p.shape()))
                .collect();
            self.v = self.m.clone();
        }
        self.t += 1;
        let [b1, b2] = self.betas.map(|b| b as f32);
        let c1 = 1.0 - b1.powi(self.t as i32);
        let c2 = 1.0 - b2.powi(self.t as i32);
        let step = self.learning_rate as f32 / c1;
        for ((p, m), v) in params.iter_mut().zip(&mut self.m).zip(&mut self.v) {
            let g = grads.get(p);
            *m = m.clone() * b1 + g.clone() * (1.0 - b1);
            *v = v.clone() * b2 + g.square() * (1.0 - b2);
            let denom = (v.clone() / c2).sqrt() + self.eps as f32;
            *p = p.clone() - m.clone() / denom * step;
        }
    }
}
