//! Exact places in the waiting order.
//!
//! Every entry gets an order number when it takes its place: the next
//! one (the tail), or, in a scheduled opening's pre-queue, a free number
//! inside the pre-queue's window (`opening`). The numbers in use form a
//! window, cut into blocks of `BLOCK` numbers: a block has one bit per
//! number (set while that entry waits) and the entry each number belongs
//! to. A Fenwick tree over the blocks' live
//! counts gives how many wait in the blocks before a given one, so a rank
//! is a short tree walk plus a few popcounts inside one block: O(log n)
//! with few cache lines touched. Blocks leave from the front as the queue
//! moves, so the window follows the live entries; a block left empty in
//! the middle gives back its entry table.

use std::collections::VecDeque;

/// Order numbers per block.
const BLOCK: usize = 1024;
const WORDS: usize = BLOCK / 64;

/// No entry: a number whose entry has left (or never took it).
pub const NONE: u32 = u32::MAX;

#[derive(Clone, Debug)]
struct Block {
    live: u32,
    bits: [u64; WORDS],
    /// The entry holding each number; `None` once the block is empty.
    entries: Option<Box<[u32]>>,
}

impl Block {
    fn new() -> Block {
        Block {
            live: 0,
            bits: [0; WORDS],
            // Made by the first `place` in it: a sparse window costs
            // little.
            entries: None,
        }
    }

    /// Live numbers in this block below `offset`.
    fn live_below(&self, offset: usize) -> u64 {
        let (word, bit) = (offset / 64, offset % 64);
        let whole: u32 = self.bits[..word].iter().map(|w| w.count_ones()).sum();
        let partial = (self.bits[word] & ((1u64 << bit) - 1)).count_ones();
        u64::from(whole + partial)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Ranks {
    /// The order number of the first block's first slot.
    base: u64,
    /// The next number to hand out.
    next: u64,
    blocks: VecDeque<Block>,
    /// 1-based Fenwick tree over `blocks[i].live`.
    tree: Vec<u64>,
    live: u64,
}

impl Ranks {
    /// How many numbers are taken by waiting entries.
    pub fn len(&self) -> u64 {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The next number `push` hands out.
    pub fn next_number(&self) -> u64 {
        self.next
    }

    /// Gives `entry` the next number (the tail of the order).
    #[cfg(test)]
    pub fn push(&mut self, entry: u32) -> u64 {
        let number = self.next;
        self.place(number, entry);
        number
    }

    /// Gives `entry` the number `number`, which no waiting entry holds:
    /// at or after the next one (numbers skipped stay unused), or a free
    /// one before it.
    pub fn place(&mut self, number: u64, entry: u32) {
        if self.live == 0 {
            self.blocks.clear();
            self.tree.clear();
            self.base = number - number % BLOCK as u64;
        }
        if number < self.base {
            // Blocks left empty at the front were dropped: bring them back.
            let first = number - number % BLOCK as u64;
            for _ in 0..(self.base - first) / BLOCK as u64 {
                self.blocks.push_front(Block::new());
            }
            self.base = first;
            self.rebuild_tree();
        }
        let offset = (number - self.base) as usize;
        while self.blocks.len() <= offset / BLOCK {
            self.blocks.push_back(Block::new());
            self.tree_append(0);
        }
        let block = &mut self.blocks[offset / BLOCK];
        let at = offset % BLOCK;
        debug_assert!(block.bits[at / 64] & (1 << (at % 64)) == 0, "number taken");
        block.bits[at / 64] |= 1 << (at % 64);
        block
            .entries
            .get_or_insert_with(|| vec![NONE; BLOCK].into_boxed_slice())[at] = entry;
        block.live += 1;
        self.tree_add(offset / BLOCK, 1);
        self.live += 1;
        self.next = self.next.max(number + 1);
    }

    /// Numbers below `next` are handed out or skipped from now on.
    pub fn skip_to(&mut self, next: u64) {
        self.next = self.next.max(next);
    }

    /// How many waiting entries have a number below `number`.
    pub fn rank(&self, number: u64) -> u64 {
        let offset = (number.saturating_sub(self.base)) as usize;
        let block = offset / BLOCK;
        if block >= self.blocks.len() {
            return self.live;
        }
        self.tree_prefix(block) + self.blocks[block].live_below(offset % BLOCK)
    }

    /// The entry holding `number`, if it still waits.
    pub fn entry_at(&self, number: u64) -> Option<u32> {
        let offset = number.checked_sub(self.base)? as usize;
        let block = self.blocks.get(offset / BLOCK)?;
        let entry = block.entries.as_ref()?[offset % BLOCK];
        (entry != NONE).then_some(entry)
    }

    /// The entry at the front of the order (a few word scans: the front
    /// block is never empty).
    pub fn first(&self) -> Option<u32> {
        let block = self.blocks.front()?;
        let (word, bits) = block.bits.iter().enumerate().find(|(_, w)| **w != 0)?;
        let at = word * 64 + bits.trailing_zeros() as usize;
        block.entries.as_ref().map(|entries| entries[at])
    }

    /// Frees `number`.
    pub fn remove(&mut self, number: u64) {
        let Some(offset) = number.checked_sub(self.base).map(|o| o as usize) else {
            return;
        };
        let index = offset / BLOCK;
        let Some(block) = self.blocks.get_mut(index) else {
            return;
        };
        let at = offset % BLOCK;
        let mask = 1u64 << (at % 64);
        if block.bits[at / 64] & mask == 0 {
            return;
        }
        block.bits[at / 64] &= !mask;
        if let Some(entries) = block.entries.as_mut() {
            entries[at] = NONE;
        }
        block.live -= 1;
        if block.live == 0 {
            block.entries = None;
        }
        self.live -= 1;
        self.tree_add(index, -1);
        self.drop_empty_front();
    }

    /// Waiting entries in order, from the front.
    pub fn entries(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.blocks.iter().enumerate().flat_map(move |(b, block)| {
            let first = self.base + (b * BLOCK) as u64;
            block
                .entries
                .iter()
                .flat_map(|entries| entries.iter().enumerate())
                .filter(|(_, &e)| e != NONE)
                .map(move |(i, &e)| (first + i as u64, e))
        })
    }

    /// Bytes held beyond the struct itself.
    pub fn memory_usage(&self) -> usize {
        let tables = self.blocks.iter().filter(|b| b.entries.is_some()).count();
        self.blocks.capacity() * std::mem::size_of::<Block>()
            + tables * BLOCK * std::mem::size_of::<u32>()
            + self.tree.capacity() * std::mem::size_of::<u64>()
    }

    fn drop_empty_front(&mut self) {
        let mut dropped = false;
        while self.blocks.front().is_some_and(|b| b.live == 0) {
            self.blocks.pop_front();
            self.base += BLOCK as u64;
            dropped = true;
        }
        if self.live == 0 {
            self.blocks = VecDeque::new();
            self.tree = Vec::new();
        } else if dropped {
            self.rebuild_tree();
        }
    }

    fn rebuild_tree(&mut self) {
        let n = self.blocks.len();
        self.tree.clear();
        self.tree.resize(n + 1, 0);
        for (i, block) in self.blocks.iter().enumerate() {
            self.tree[i + 1] += u64::from(block.live);
            let parent = (i + 1) + ((i + 1) & (i + 1).wrapping_neg());
            if parent <= n {
                self.tree[parent] += self.tree[i + 1];
            }
        }
    }

    fn tree_append(&mut self, value: u64) {
        if self.tree.is_empty() {
            self.tree.push(0);
        }
        let i = self.tree.len();
        let low = i & i.wrapping_neg();
        // Node i covers (i - low, i]: the blocks before i in that range.
        let covered = self.tree_prefix(i - 1) - self.tree_prefix(i - low);
        self.tree.push(value + covered);
    }

    fn tree_add(&mut self, block: usize, delta: i64) {
        let mut i = block + 1;
        while i < self.tree.len() {
            self.tree[i] = self.tree[i].wrapping_add_signed(delta);
            i += i & i.wrapping_neg();
        }
    }

    /// Live entries in blocks `0..block`.
    fn tree_prefix(&self, block: usize) -> u64 {
        let mut i = block;
        let mut sum = 0;
        while i > 0 {
            sum += self.tree[i];
            i &= i - 1;
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain sorted list as the model.
    #[test]
    fn ranks_agree_with_a_sorted_list_through_random_churn() {
        let mut ranks = Ranks::default();
        let mut model: Vec<(u64, u32)> = Vec::new();
        let mut seed = 7u64;
        let mut rand = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n.max(1)
        };
        for step in 0..40_000u32 {
            let r = rand(10);
            if r < 5 || model.is_empty() {
                let n = ranks.push(step);
                model.push((n, step));
            } else if r < 8 {
                let (n, _) = model.remove(rand(model.len() as u64) as usize);
                ranks.remove(n);
            } else {
                let (n, _) = model.remove(0);
                ranks.remove(n);
            }
            if step % 97 == 0 {
                for (i, &(n, e)) in model.iter().enumerate() {
                    assert_eq!(ranks.rank(n), i as u64);
                    assert_eq!(ranks.entry_at(n), Some(e));
                }
                let listed: Vec<(u64, u32)> = ranks.entries().collect();
                assert_eq!(listed, model);
                assert_eq!(ranks.first(), model.first().map(|&(_, e)| e));
            }
            assert_eq!(ranks.len(), model.len() as u64);
        }
        while let Some((n, _)) = model.pop() {
            ranks.remove(n);
        }
        assert!(ranks.is_empty());
        assert_eq!(ranks.memory_usage(), 0);
    }

    #[test]
    fn removing_a_number_twice_or_out_of_window_changes_nothing() {
        let mut ranks = Ranks::default();
        let a = ranks.push(1);
        let b = ranks.push(2);
        ranks.remove(a);
        ranks.remove(a);
        ranks.remove(b + 5000);
        assert_eq!(ranks.len(), 1);
        assert_eq!(ranks.rank(b), 0);
    }

    #[test]
    fn placed_numbers_keep_gaps() {
        let mut ranks = Ranks::default();
        ranks.place(5000, 1);
        ranks.place(7000, 2);
        assert_eq!(ranks.rank(7000), 1);
        assert_eq!(ranks.entry_at(5000), Some(1));
        assert_eq!(ranks.next_number(), 7001);
    }

    /// Free numbers taken anywhere in the window, below the next one too,
    /// even before blocks dropped from the front: ranks stay exact.
    #[test]
    fn numbers_placed_anywhere_rank_like_a_sorted_list() {
        let mut ranks = Ranks::default();
        let mut model: Vec<(u64, u32)> = Vec::new();
        let mut seed = 11u64;
        let mut rand = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n.max(1)
        };
        let window = 6 * BLOCK as u64;
        for step in 0..30_000u32 {
            let number = rand(window);
            let taken = model.iter().position(|&(n, _)| n == number);
            match taken {
                Some(i) if rand(3) > 0 => {
                    model.remove(i);
                    ranks.remove(number);
                }
                Some(_) => {}
                None => {
                    ranks.place(number, step);
                    let at = model.partition_point(|&(n, _)| n < number);
                    model.insert(at, (number, step));
                }
            }
            if step % 211 == 0 {
                for (i, &(n, e)) in model.iter().enumerate() {
                    assert_eq!(ranks.rank(n), i as u64);
                    assert_eq!(ranks.entry_at(n), Some(e));
                }
                assert_eq!(ranks.entries().collect::<Vec<_>>(), model);
                assert_eq!(ranks.first(), model.first().map(|&(_, e)| e));
            }
            assert_eq!(ranks.len(), model.len() as u64);
            assert!(ranks.next_number() > model.last().map_or(0, |&(n, _)| n) || model.is_empty());
        }
    }
}
