//! Evaluation spread over the ranks of a distributed run: each rank
//! measures every `size`-th held-out item, and [`Shard::collect`] hands every
//! rank all items' numbers in item order, so the sums (and the report) are
//! those of one process.
//!
//! The exchange itself (MPI) lives in the training layer; this layer only
//! needs "every rank's numbers, in rank order", the [`Exchange`] trait.

use std::fmt;
use std::sync::Arc;

/// Gathers numbers from every rank of a run.
pub trait Exchange: Send + Sync {
    /// This process's rank, `0..size`.
    fn rank(&self) -> usize;
    /// Number of ranks.
    fn size(&self) -> usize;
    /// Every rank's `local` (all of one length), concatenated in rank order,
    /// on every rank. A collective: every rank must call it.
    fn all_gather_f64(&self, local: &[f64]) -> Vec<f64>;
}

/// Which held-out items this process measures. [`Shard::default`] is one
/// process measuring everything.
#[derive(Clone, Default)]
pub struct Shard {
    exchange: Option<Arc<dyn Exchange>>,
}

impl Shard {
    /// The shard of `exchange`'s rank.
    pub fn new(exchange: Arc<dyn Exchange>) -> Self {
        Self {
            exchange: (exchange.size() > 1).then_some(exchange),
        }
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.exchange.as_ref().map_or(0, |e| e.rank())
    }

    /// Number of ranks sharing the evaluation.
    pub fn size(&self) -> usize {
        self.exchange.as_ref().map_or(1, |e| e.size())
    }

    /// Whether this process writes the results (rank 0).
    pub fn writes(&self) -> bool {
        self.rank() == 0
    }

    /// Whether item `index` is this process's to measure: items are dealt
    /// round-robin, so a rank's items are spread over the whole set.
    pub fn mine(&self, index: usize) -> bool {
        index % self.size() == self.rank()
    }

    /// All `items` items' numbers, `width` per item, in item order, on every
    /// rank; `local` holds this rank's items (those [`Shard::mine`] accepts)
    /// in order, `width` numbers each. A collective: every rank must call it
    /// with the same `items` and `width`.
    pub fn collect(&self, items: usize, width: usize, local: Vec<f64>) -> Vec<f64> {
        self.collect_chunks(items, 1, width, local)
    }

    /// [`Shard::collect`] for items dealt in chunks of `chunk` (chunk `c`,
    /// items `c·chunk..`, is this rank's if [`Shard::mine`]`(c)`): for
    /// evaluations that batch items, so that every batch holds the items it
    /// holds in one process and gives the same numbers.
    pub fn collect_chunks(
        &self,
        items: usize,
        chunk: usize,
        width: usize,
        local: Vec<f64>,
    ) -> Vec<f64> {
        let Some(exchange) = &self.exchange else {
            return local;
        };
        let size = exchange.size();
        let owner = |i: usize| (i / chunk.max(1)) % size;
        // Every rank sends the same length: the most items any rank has.
        let counts: Vec<usize> = (0..size)
            .map(|r| (0..items).filter(|&i| owner(i) == r).count())
            .collect();
        let slots = counts.iter().copied().max().unwrap_or(0);
        assert_eq!(
            local.len(),
            width * counts[self.rank()],
            "Shard::collect: this rank's numbers do not match its items"
        );
        let mut send = local;
        send.resize(slots * width, 0.0);
        let all = exchange.all_gather_f64(&send);
        // Each rank's items follow one another in its slots.
        let mut next = vec![0; size];
        let mut out = Vec::with_capacity(items * width);
        for i in 0..items {
            let r = owner(i);
            let at = (r * slots + next[r]) * width;
            next[r] += 1;
            out.extend_from_slice(&all[at..at + width]);
        }
        out
    }
}

impl fmt::Debug for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Shard {{ rank: {}, size: {} }}",
            self.rank(),
            self.size()
        )
    }
}

impl PartialEq for Shard {
    fn eq(&self, other: &Self) -> bool {
        (self.rank(), self.size()) == (other.rank(), other.size())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Barrier, Mutex};

    /// Ranks as threads, gathering through shared memory.
    struct Threads {
        rank: usize,
        size: usize,
        board: Arc<(Mutex<Vec<Vec<f64>>>, Barrier)>,
    }

    impl Exchange for Threads {
        fn rank(&self) -> usize {
            self.rank
        }
        fn size(&self) -> usize {
            self.size
        }
        fn all_gather_f64(&self, local: &[f64]) -> Vec<f64> {
            self.board.0.lock().unwrap()[self.rank] = local.to_vec();
            self.board.1.wait();
            let all = self.board.0.lock().unwrap().concat();
            self.board.1.wait();
            all
        }
    }

    /// What `f` returns on each of `size` ranks, run as threads.
    fn on_ranks(size: usize, f: fn(&Shard) -> Vec<f64>) -> Vec<Vec<f64>> {
        let board = Arc::new((Mutex::new(vec![Vec::new(); size]), Barrier::new(size)));
        let handles: Vec<_> = (0..size)
            .map(|rank| {
                let board = board.clone();
                std::thread::spawn(move || f(&Shard::new(Arc::new(Threads { rank, size, board }))))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    }

    #[test]
    fn collect_gives_every_rank_all_items_in_order() {
        for size in [2, 3, 4] {
            // 7 items, 3 · 2 = 6 numbers each.
            let results = on_ranks(size, |shard| {
                let local: Vec<f64> = (0..7)
                    .filter(|i| shard.mine(*i))
                    .flat_map(|i| [i as f64, -(i as f64)])
                    .collect();
                shard.collect(7, 2, local)
            });
            let want: Vec<f64> = (0..7).flat_map(|i| [i as f64, -(i as f64)]).collect();
            assert!(results.iter().all(|r| *r == want), "{size} ranks");
        }
        // Fewer items than ranks: some ranks have none.
        let results = on_ranks(3, |shard| {
            let local = (0..2)
                .filter(|i| shard.mine(*i))
                .map(|i| i as f64)
                .collect();
            shard.collect(2, 1, local)
        });
        assert!(results.iter().all(|r| *r == [0.0, 1.0]));
    }

    #[test]
    fn chunks_are_dealt_whole() {
        // 7 items in chunks of 3: rank 0 has 0..3 and 6, rank 1 has 3..6.
        let results = on_ranks(2, |shard| {
            let local = (0..7)
                .filter(|i| shard.mine(i / 3))
                .map(|i| i as f64)
                .collect();
            shard.collect_chunks(7, 3, 1, local)
        });
        for r in results {
            assert_eq!(r, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        }
    }

    #[test]
    fn one_process_measures_everything() {
        let shard = Shard::default();
        assert!((0..5).all(|i| shard.mine(i)) && shard.writes());
        assert_eq!(shard.collect(2, 1, vec![1.0, 2.0]), [1.0, 2.0]);
    }
}
