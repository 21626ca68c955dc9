//! Multi-head attention with the distance bias, in two orders that compute
//! the same function: the usual one, and a cheaper one for a few queries
//! over many keys (autoregressive sampling asks one query at a time).

use dfdx::prelude::*;

use super::config::ModelConfig;
use super::distance::DistanceFactors;
use super::layers::Attention;
use crate::backend::{reference::broadcast_rows, AttentionShape, Backend, Flat, Param};

type S3 = (usize, usize, usize);
type S4 = (usize, usize, usize, usize);

/// The sizes of one attention call: `b` groups of `sq` queries over `sk` keys.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sizes {
    pub(super) b: usize,
    pub(super) sq: usize,
    pub(super) sk: usize,
}

impl Attention {
    /// Multi-head attention of each group's queries over its keys.
    /// `key_bias` is `b × sk`: 0 for real keys, a large negative number for
    /// padding; `distance` holds the positions' factors of the distance bias.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward<D: Backend, T: Tape<f32, D>>(
        self,
        params: &[Param<D>],
        c: &ModelConfig,
        queries: Flat<D, T>,
        keys: Flat<D, T>,
        Sizes { b, sq, sk }: Sizes,
        key_bias: Option<&Tensor<(usize, usize), f32, D>>,
        distance: Option<&DistanceFactors<D>>,
    ) -> Flat<D, T> {
        let w = c.width();
        let h = c.heads;
        let dh = w / h;
        let q = self.query.forward(params, queries);
        let k = self.key.forward(params, keys.with_empty_tape());
        let v = self.value.forward(params, keys);
        // The distance bias rides along in the score product as P + 2 extra
        // numbers per head (see `DistanceFactors`), so it needs no `sq × sk`
        // tensor of its own.
        let (q, k) = match (self.distance_strength, distance) {
            (Some(strength), Some(factors)) => {
                let f = factors.queries.shape().2;
                let k_extra = factors
                    .keys
                    .clone()
                    .broadcast_like::<S4, Axis<2>>(&(b, sk, h, f));
                (
                    with_query_factors(params, strength, factors, q.reshape_like(&(b, sq, h, dh))),
                    (k.reshape_like(&(b, sk, h, dh)), k_extra)
                        .concat_along(Axis::<3>)
                        .reshape_like(&(b * sk, h * (dh + f))),
                )
            }
            _ => (q, k),
        };
        let shape = AttentionShape {
            batch: b,
            heads: h,
            queries: sq,
            keys: sk,
            scale: 1.0 / (dh as f32).sqrt(),
        };
        self.out
            .forward(params, D::attention(q, k, v, shape, key_bias))
    }

    /// Cross-attention of `sq` queries over the encoder's `memory`, the same
    /// function as [`Attention::forward`] computed in another order, for when
    /// queries are few.
    ///
    /// The usual order projects every key and value (`sk × w` times `w × w`,
    /// twice per layer) though only a handful of queries read them. Per head
    /// `j`, with `m` a memory row, the score is `q_j·(m W_kj + c_kj) =
    /// (q_j W_kjᵀ)·m + q_j·c_kj`; the last term is the same for every key, and
    /// softmax ignores it. The output is `Σ p·(m W_vj + c_vj) = (Σ p·m) W_vj +
    /// c_vj`, since the weights sum to 1. So each head attends with `q_j W_kjᵀ`
    /// over the raw memory, and the value projection is applied once to the
    /// weighted sum. Every head shares the same keys, so the heads ride along
    /// as extra query rows of a single-head attention.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward_few_queries<D: Backend, T: Tape<f32, D>>(
        self,
        params: &[Param<D>],
        c: &ModelConfig,
        queries: Flat<D, T>,
        memory: Flat<D, T>,
        Sizes { b, sq, sk }: Sizes,
        key_bias: Option<&Tensor<(usize, usize), f32, D>>,
        distance: Option<&DistanceFactors<D>>,
    ) -> Flat<D, T> {
        let w = c.width();
        let h = c.heads;
        let dh = w / h;
        // q_j W_kjᵀ for every head j: (h × rows × dh) times (h × dh × w).
        let q = self
            .query
            .forward(params, queries)
            .reshape_like(&(b * sq, h, dh))
            .permute::<S3, Axes3<1, 0, 2>>();
        let key_weight = params[self.key.weight]
            .retaped::<T>()
            .reshape_like(&(w, h, dh))
            .permute::<S3, Axes3<1, 2, 0>>();
        let q = q.matmul(key_weight).permute::<S3, Axes3<1, 0, 2>>();
        let (q, k) = match (self.distance_strength, distance) {
            (Some(strength), Some(factors)) => (
                with_query_factors(params, strength, factors, q.reshape_like(&(b, sq, h, w))),
                (
                    memory.with_empty_tape().reshape_like(&(b, sk, w)),
                    factors.keys.clone().retaped::<T>(),
                )
                    .concat_along(Axis::<2>)
                    .reshape_like(&(b * sk, w + factors.keys.shape().2)),
            ),
            _ => (q.reshape_like(&(b * sq, h * w)), memory.with_empty_tape()),
        };
        let shape = AttentionShape {
            batch: b,
            heads: 1,
            queries: sq * h,
            keys: sk,
            scale: 1.0 / (dh as f32).sqrt(),
        };
        let q = q.reshape_like(&(b * sq * h, k.shape().1));
        // Weighted sums of memory rows, one per (query, head); then each
        // head's value projection.
        let value_weight = params[self.value.weight]
            .retaped::<T>()
            .reshape_like(&(w, h, dh))
            .permute::<S3, Axes3<1, 0, 2>>();
        let mixed = D::attention(q, k, memory, shape, key_bias)
            .reshape_like(&(b * sq, h, w))
            .permute::<S3, Axes3<1, 0, 2>>()
            .matmul(value_weight)
            .permute::<S3, Axes3<1, 0, 2>>()
            .reshape_like(&(b * sq, w));
        let value_bias = broadcast_rows::<D, T>(&params[self.value.bias], b * sq);
        self.out.forward(params, mixed + value_bias)
    }
}

/// Whether [`Attention::forward_few_queries`] costs fewer multiplications
/// than [`Attention::forward`] for `sq` queries over `sk` keys.
pub(super) fn few_queries_are_cheaper(c: &ModelConfig, sq: usize, sk: usize) -> bool {
    let (w, h) = (c.width(), c.heads);
    // Projecting keys and values: 2·sk·w² + 2·sq·sk·w. Moving the
    // projections to the query side: 2·sq·w² + 2·sq·sk·heads·w.
    sq * (w + sk * h) < sk * (w + sq)
}

/// Appends each head's distance-bias factors (`b × sq × heads × f`, scaled
/// by the head's learned strength) to `q` (`b × sq × heads × d`) and
/// flattens it to `(b·sq) × heads·(d + f)`.
fn with_query_factors<D: Backend, T: Tape<f32, D>>(
    params: &[Param<D>],
    strength: usize,
    factors: &DistanceFactors<D>,
    q: Tensor<S4, f32, D, T>,
) -> Flat<D, T> {
    let (b, sq, h, d) = *q.shape();
    let f = factors.queries.shape().2;
    let strength = params[strength].retaped::<T>().exp().reshape_like(&(h,));
    let q_extra = strength.broadcast_like::<S4, Axes3<0, 1, 3>>(&(b, sq, h, f))
        * factors
            .queries
            .clone()
            .broadcast_like::<S4, Axis<2>>(&(b, sq, h, f));
    (q, q_extra)
        .concat_along(Axis::<3>)
        .reshape_like(&(b * sq, h * (d + f)))
}
