//! The distance bias's position factors: how `−s·‖x_q − x_k‖²` rides
//! along in attention's score product instead of needing a `|Q| × |S|`
//! tensor of its own.

use dfdx::prelude::*;

use crate::backend::Backend;

/// The position-only factors of the distance bias `−s·‖x_q − x_k‖²`.
///
/// Softmax over keys ignores any term that depends on the query alone, so
/// `−s·‖x_q − x_k‖² ≡ s·(2 x_q·x_k − ‖x_k‖²)`, a dot product of
/// `s·[2x_q, −1]` with `[x_k, ‖x_k‖²]`. Appending these `P + 1` numbers (and
/// one more for the position-less prior token) to each head's query and key
/// vectors adds the bias inside the score product itself. The learned
/// strength `s` multiplies the query side; everything here is fixed.
#[derive(Debug, Clone)]
pub(super) struct DistanceFactors<D: Backend> {
    /// `b × rows × (P + 2)`: `√d·[2x, −1, ‖x‖²]` per query (zero for the
    /// prior token), the `√d` undoing the score scale `1/√d`.
    pub(super) queries: Factors<D>,
    /// `b × keys × (P + 2)`: `[x, ‖x‖², 0]` per sample, `[0, 0, 1]` for the
    /// prior token. The last factor gives the prior the query's `‖x_q‖²`,
    /// which every sample key also carries once the identity above is
    /// applied, so the prior's bias is 0.
    pub(super) keys: Factors<D>,
}

impl<D: Backend> DistanceFactors<D> {
    /// Key factors for `b` groups of `rows` slots (`None` = the prior token;
    /// missing slots are padding).
    pub(super) fn keys<'a, const P: usize, I, J>(device: &D, groups: I, rows: usize) -> Factors<D>
    where
        I: ExactSizeIterator<Item = J>,
        J: Iterator<Item = Option<&'a [f32; P]>>,
    {
        factor_rows(device, groups, rows, |slot, row| match slot {
            Some(x) => {
                row[..P].copy_from_slice(x);
                row[P] = x.iter().map(|v| v * v).sum();
            }
            None => row[P + 1] = 1.0,
        })
    }

    /// Pairs `keys` with the query factors of `b` groups of `rows` slots.
    pub(super) fn with_queries<'a, const P: usize, I, J>(
        device: &D,
        keys: Factors<D>,
        groups: I,
        rows: usize,
        scale: f32,
    ) -> Self
    where
        I: ExactSizeIterator<Item = J>,
        J: Iterator<Item = Option<&'a [f32; P]>>,
    {
        let queries = factor_rows(device, groups, rows, |slot, row| {
            if let Some(x) = slot {
                for (a, xa) in x.iter().enumerate() {
                    row[a] = 2.0 * scale * xa;
                }
                row[P] = -scale;
                row[P + 1] = scale * x.iter().map(|v| v * v).sum::<f32>();
            }
        });
        Self { queries, keys }
    }
}

/// `b × rows × (P + 2)` factors of the distance bias.
pub(super) type Factors<D> = Tensor<(usize, usize, usize), f32, D>;

/// Builds `b × rows × (P + 2)` factors, `fill` writing each slot's row (rows
/// of missing slots, i.e. padding, stay zero).
fn factor_rows<'a, const P: usize, D: Backend, I, J>(
    device: &D,
    groups: I,
    rows: usize,
    fill: impl Fn(Option<&'a [f32; P]>, &mut [f32]),
) -> Factors<D>
where
    I: ExactSizeIterator<Item = J>,
    J: Iterator<Item = Option<&'a [f32; P]>>,
{
    let (b, f) = (groups.len(), P + 2);
    let mut data = vec![0.0f32; b * rows * f];
    for (i, slots) in groups.enumerate() {
        for (j, slot) in slots.enumerate() {
            fill(slot, &mut data[(i * rows + j) * f..(i * rows + j + 1) * f]);
        }
    }
    device.tensor_from_vec(data, (b, rows, f))
}
