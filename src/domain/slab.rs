//! Storage shared by the event's tables: a slab of records addressed by a
//! `u32` index, and a hash index from a record's name to its slot.
//!
//! Records refer to each other by slot index (4 bytes) rather than by
//! pointer or by name, which keeps the per-fan structures small. Slot
//! numbers are an in-memory detail: nothing stored or replicated depends
//! on them.

use std::hash::BuildHasher;

use foldhash::quality::RandomState;
use hashbrown::HashTable;

/// A token or DEDUPE id as a record keeps it: up to 40 bytes (a UUID)
/// inside the record, longer ones on the heap. Most names then cost no
/// allocation of their own, nor a cache miss to compare.
pub type LongName = smallvec::SmallVec<[u8; 40]>;
/// A user name as a record keeps it: up to 24 bytes inside.
pub type ShortName = smallvec::SmallVec<[u8; 24]>;

/// Heap bytes of a name (0 when it sits inside its record).
pub fn heap_bytes<const N: usize>(name: &smallvec::SmallVec<[u8; N]>) -> usize {
    if name.spilled() {
        name.capacity()
    } else {
        0
    }
}

/// Records per chunk. The first chunk grows like a vector up to this size,
/// so a small slab holds no more than a vector would; every later chunk is
/// made whole at once (no copying as it fills), so a big slab holds at
/// most one chunk more than it needs (a single vector would double, and
/// hold up to twice what it needs).
const CHUNK: usize = 1024;

/// Records in chunks, with one bit per slot saying whether it is taken (a
/// free slot holds a default record: cheaper than an `Option` tag on every
/// record, which would cost a word each).
#[derive(Clone, Debug)]
pub struct Slab<T> {
    chunks: Vec<Vec<T>>,
    taken: Vec<u64>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            chunks: Vec::new(),
            taken: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T: Default> Slab<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn insert(&mut self, item: T) -> u32 {
        self.len += 1;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.chunks[slot as usize / CHUNK][slot as usize % CHUNK] = item;
                slot
            }
            None => {
                if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
                    let capacity = if self.chunks.is_empty() { 0 } else { CHUNK };
                    self.chunks.push(Vec::with_capacity(capacity));
                }
                let last = self.chunks.len() - 1;
                let chunk = &mut self.chunks[last];
                chunk.push(item);
                let slot = (last * CHUNK + chunk.len() - 1) as u32;
                if self.taken.len() <= slot as usize / 64 {
                    self.taken.push(0);
                }
                slot
            }
        };
        self.taken[slot as usize / 64] |= 1 << (slot % 64);
        slot
    }

    /// Removes the record; an empty slab gives its memory back.
    pub fn remove(&mut self, slot: u32) -> Option<T> {
        if !self.is_taken(slot) {
            return None;
        }
        self.taken[slot as usize / 64] &= !(1 << (slot % 64));
        let item = std::mem::take(&mut self.chunks[slot as usize / CHUNK][slot as usize % CHUNK]);
        self.len -= 1;
        if self.len == 0 {
            *self = Slab::default();
        } else {
            self.free.push(slot);
        }
        Some(item)
    }

    pub fn is_taken(&self, slot: u32) -> bool {
        self.taken
            .get(slot as usize / 64)
            .is_some_and(|bits| bits & (1 << (slot % 64)) != 0)
    }

    pub fn get(&self, slot: u32) -> Option<&T> {
        self.is_taken(slot)
            .then(|| &self.chunks[slot as usize / CHUNK][slot as usize % CHUNK])
    }

    pub fn get_mut(&mut self, slot: u32) -> Option<&mut T> {
        if !self.is_taken(slot) {
            return None;
        }
        Some(&mut self.chunks[slot as usize / CHUNK][slot as usize % CHUNK])
    }

    /// The record in `slot`, which the caller knows is taken.
    ///
    /// Panics otherwise: a dangling slot index is a bug in the tables'
    /// bookkeeping, caught at the command boundary, never a stored state
    /// (decoding checks every reference).
    pub fn at(&self, slot: u32) -> &T {
        self.get(slot).expect("slot in use")
    }

    pub fn at_mut(&mut self, slot: u32) -> &mut T {
        self.get_mut(slot).expect("slot in use")
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.chunks
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, item)| (i as u32, item))
            .filter(|(i, _)| self.is_taken(*i))
    }

    /// Bytes held beyond the struct itself, not counting what the records
    /// own.
    pub fn memory_usage(&self) -> usize {
        self.chunks.iter().map(Vec::capacity).sum::<usize>() * std::mem::size_of::<T>()
            + self.chunks.capacity() * std::mem::size_of::<Vec<T>>()
            + self.taken.capacity() * std::mem::size_of::<u64>()
            + self.free.capacity() * std::mem::size_of::<u32>()
    }
}

/// Finds a record's slot by its name (token, user, dedupe id). The names
/// live in the records; the index holds only slot numbers.
#[derive(Clone, Debug, Default)]
pub struct NameIndex {
    table: HashTable<u32>,
    // Seeded at random per index: names come from clients, so their hashes
    // must not be predictable. foldhash rather than std's SipHash: several
    // times faster on short names, which every command hashes.
    hasher: RandomState,
}

impl NameIndex {
    fn hash(&self, name: &[u8]) -> u64 {
        self.hasher.hash_one(name)
    }

    pub fn find<'s>(&self, name: &[u8], name_of: impl Fn(u32) -> &'s [u8]) -> Option<u32> {
        self.table
            .find(self.hash(name), |&slot| name_of(slot) == name)
            .copied()
    }

    /// Indexes `slot` under `name`, which must not be indexed yet.
    pub fn insert<'s>(&mut self, slot: u32, name: &[u8], name_of: impl Fn(u32) -> &'s [u8]) {
        let hasher = &self.hasher;
        self.table
            .insert_unique(self.hasher.hash_one(name), slot, |&s| {
                hasher.hash_one(name_of(s))
            });
    }

    pub fn remove<'s>(&mut self, name: &[u8], name_of: impl Fn(u32) -> &'s [u8]) -> Option<u32> {
        let hash = self.hash(name);
        let found = self.table.find_entry(hash, |&slot| name_of(slot) == name);
        let slot = found.ok()?.remove().0;
        if self.table.is_empty() {
            self.table = HashTable::new();
        }
        Some(slot)
    }

    /// Keeps only the slots for which `keep` says so, in one pass over the
    /// table: for a crowd of removals at once, far cheaper than looking up
    /// each name (a cache miss each).
    pub fn retain(&mut self, mut keep: impl FnMut(u32) -> bool) {
        self.table.retain(|slot| keep(*slot));
        if self.table.is_empty() {
            self.table = HashTable::new();
        }
    }

    /// Whether removing `n` names is cheaper by `retain` than one by one.
    pub fn sweep_pays_for(&self, n: usize) -> bool {
        // A pass visits every slot in the table at a few nanoseconds each;
        // a lookup costs a cache miss, some tens of times more.
        n * 32 >= self.table.len()
    }

    pub fn memory_usage(&self) -> usize {
        self.table.allocation_size()
    }
}
