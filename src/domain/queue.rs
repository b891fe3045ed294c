//! The waiting entries of one event and the indexes over them: by token,
//! by place in the order (`Ranks`), by last heartbeat, and per user.
//! Tokens and users are known by their digests (`names`): their text is in
//! the stream.
//!
//! This is a data structure, not a rule: it keeps its indexes consistent
//! and answers in O(1) or O(log n); when an entry joins, moves or leaves is
//! decided in `event.rs`.
//!
//! Heartbeats form a list from the oldest to the newest. A recorded beat
//! is never older than the newest one already there, so the list stays in
//! beat order and the entries to abandon are always a run at its head.

use super::entry_id::EntryId;
use super::names::NameDigest;
use super::ranks::{Ranks, NONE};
use super::slab::{NameIndex, Slab};

#[derive(Clone, Debug, Default)]
pub struct Entry {
    /// Its stream entry id.
    pub id: EntryId,
    pub token: NameDigest,
    /// Its last recorded heartbeat (unix ms).
    pub beat_ms: u64,
    /// Its order number (`Ranks`).
    number: u64,
    user: u32,
    older_beat: u32,
    newer_beat: u32,
    /// The user's next entry in join order.
    next_of_user: u32,
}

/// A user with waiting entries.
#[derive(Clone, Debug, Default)]
pub struct User {
    pub name: NameDigest,
    first: u32,
    last: u32,
    waiting: u32,
}

#[derive(Clone, Debug, Default)]
pub struct Queue {
    entries: Slab<Entry>,
    tokens: NameIndex,
    ranks: Ranks,
    users: Slab<User>,
    user_names: NameIndex,
    oldest_beat: Option<u32>,
    newest_beat: Option<u32>,
    /// The id of the newest entry ever appended: ids only grow, also after
    /// the queue empties.
    pub last_id: Option<EntryId>,
}

impl Queue {
    pub fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn find(&self, token: &NameDigest) -> Option<u32> {
        let entries = &self.entries;
        self.tokens.find(token, |s| &entries.at(s).token[..])
    }

    pub fn entry(&self, slot: u32) -> &Entry {
        self.entries.at(slot)
    }

    /// The digest of the user of the entry in `slot`.
    pub fn user_of(&self, slot: u32) -> &NameDigest {
        &self.users.at(self.entries.at(slot).user).name
    }

    /// The id the next entry gets at `now_ms`.
    pub fn next_id(&self, now_ms: u64) -> EntryId {
        EntryId::next_after(self.last_id, now_ms)
    }

    /// Appends `token` (not waiting yet) at the tail of the order, with id
    /// `id` (after `last_id`) and a heartbeat at `beat_ms`.
    pub fn append(
        &mut self,
        id: EntryId,
        token: NameDigest,
        user: &NameDigest,
        beat_ms: u64,
    ) -> u32 {
        let number = self.ranks.next_number();
        self.insert(id, token, user, beat_ms, number)
    }

    /// Adds an entry with a given order number, which no waiting entry
    /// holds; `append`, a pre-queue join and decoding use it.
    pub fn insert(
        &mut self,
        id: EntryId,
        token: NameDigest,
        user: &NameDigest,
        beat_ms: u64,
        number: u64,
    ) -> u32 {
        let user_slot = self.user_slot(user);
        let slot = self.entries.insert(Entry {
            id,
            token,
            beat_ms,
            number,
            user: user_slot,
            older_beat: NONE,
            newer_beat: NONE,
            next_of_user: NONE,
        });
        let entries = &self.entries;
        self.tokens
            .insert(slot, &token, |s| &entries.at(s).token[..]);
        self.ranks.place(number, slot);
        self.link_beat(slot);
        let u = self.users.at_mut(user_slot);
        if u.waiting == 0 {
            u.first = slot;
        } else {
            let last = u.last;
            self.entries.at_mut(last).next_of_user = slot;
        }
        let u = self.users.at_mut(user_slot);
        u.last = slot;
        u.waiting += 1;
        if self.last_id.is_none_or(|last| id > last) {
            self.last_id = Some(id);
        }
        slot
    }

    /// Removes the entry in `slot` from every index; returns its id.
    pub fn remove(&mut self, slot: u32) -> EntryId {
        let (entry, gone_user) = self.unlink(slot);
        let entries = &self.entries;
        // The token is gone from the slab: compare against it directly.
        self.tokens.remove(&entry.token, |s| {
            if s == slot {
                &entry.token[..]
            } else {
                &entries.at(s).token[..]
            }
        });
        if let Some((user_slot, user)) = gone_user {
            let users = &self.users;
            self.user_names.remove(&user.name, |s| {
                if s == user_slot {
                    &user.name[..]
                } else {
                    &users.at(s).name[..]
                }
            });
        }
        entry.id
    }

    /// Removes the entries in `slots` (each once), appending their ids to
    /// `ids` in that order. A crowd leaves the name indexes in one pass
    /// over each instead of one lookup per name.
    pub fn remove_all(&mut self, slots: &[u32], ids: &mut Vec<EntryId>) {
        if !self.tokens.sweep_pays_for(slots.len()) {
            ids.extend(slots.iter().map(|&slot| self.remove(slot)));
            return;
        }
        let mut users_gone = 0;
        for &slot in slots {
            let (entry, gone_user) = self.unlink(slot);
            users_gone += usize::from(gone_user.is_some());
            ids.push(entry.id);
        }
        let entries = &self.entries;
        self.tokens.retain(|slot| entries.is_taken(slot));
        if users_gone > 0 {
            let users = &self.users;
            self.user_names.retain(|slot| users.is_taken(slot));
        }
    }

    /// Takes the entry in `slot` out of the slab, the order, the beat list
    /// and its user's list, leaving its token in the token index. Returns
    /// it, and its user if that has no entry left (out of the user slab,
    /// its name still indexed).
    fn unlink(&mut self, slot: u32) -> (Entry, Option<(u32, User)>) {
        self.unlink_beat(slot);
        let entry = self.entries.remove(slot).expect("slot in use");
        self.ranks.remove(entry.number);
        let gone_user = self.unlink_user(slot, &entry);
        (entry, gone_user)
    }

    /// 1-based place among all waiting entries.
    pub fn position(&self, slot: u32) -> u64 {
        self.ranks.rank(self.entries.at(slot).number) + 1
    }

    /// 1-based place among the user's waiting entries, in queue order
    /// (which a scheduled opening's shuffle makes differ from join order).
    pub fn user_position(&self, slot: u32) -> u64 {
        let entry = self.entries.at(slot);
        let user = self.users.at(entry.user);
        let mut at = user.first;
        let mut ahead = 0;
        while at != NONE {
            let other = self.entries.at(at);
            ahead += u64::from(other.number < entry.number);
            at = other.next_of_user;
        }
        ahead + 1
    }

    /// How many entries the user of the entry in `slot` has waiting.
    pub fn user_waiting_of(&self, slot: u32) -> u64 {
        u64::from(self.users.at(self.entries.at(slot).user).waiting)
    }

    /// How many entries `user` has waiting.
    pub fn user_waiting(&self, user: &NameDigest) -> u64 {
        self.find_user(user)
            .map_or(0, |u| u64::from(self.users.at(u).waiting))
    }

    /// The user's waiting entries in join order.
    pub fn user_entries(&self, user: &NameDigest) -> impl Iterator<Item = u32> + '_ {
        let mut at = self
            .find_user(user)
            .map_or(NONE, |u| self.users.at(u).first);
        std::iter::from_fn(move || {
            let slot = (at != NONE).then_some(at)?;
            at = self.entries.at(slot).next_of_user;
            Some(slot)
        })
    }

    /// Records a heartbeat at `beat_ms`, which must be at or after the
    /// newest recorded one.
    pub fn touch(&mut self, slot: u32, beat_ms: u64) {
        self.unlink_beat(slot);
        self.entries.at_mut(slot).beat_ms = beat_ms;
        self.link_beat(slot);
    }

    /// Puts the heartbeat list in (beat, order) order: after entries were
    /// inserted in order-number order (decoding).
    pub fn sort_beats(&mut self) {
        let mut slots: Vec<u32> = self.in_order().collect();
        slots.sort_by_key(|&s| (self.entries.at(s).beat_ms, self.entries.at(s).number));
        self.oldest_beat = None;
        self.newest_beat = None;
        for slot in slots {
            self.link_beat(slot);
        }
    }

    /// The newest recorded heartbeat.
    pub fn newest_beat_ms(&self) -> Option<u64> {
        Some(self.entries.at(self.newest_beat?).beat_ms)
    }

    /// Entries from the oldest heartbeat to the newest.
    pub fn by_beat(&self) -> impl Iterator<Item = u32> + '_ {
        let mut at = self.oldest_beat.unwrap_or(NONE);
        std::iter::from_fn(move || {
            let slot = (at != NONE).then_some(at)?;
            at = self.entries.at(slot).newer_beat;
            Some(slot)
        })
    }

    /// The lowest id still waiting: the front's, as ids grow with the
    /// order.
    pub fn oldest_id(&self) -> Option<EntryId> {
        self.ranks.first().map(|slot| self.entries.at(slot).id)
    }

    /// Entries in queue order, from the front.
    pub fn in_order(&self) -> impl Iterator<Item = u32> + '_ {
        self.ranks.entries().map(|(_, slot)| slot)
    }

    /// The order number of an entry.
    pub fn number(&self, slot: u32) -> u64 {
        self.entries.at(slot).number
    }

    /// How many waiting entries have an order number below `number`.
    pub fn waiting_below(&self, number: u64) -> u64 {
        self.ranks.rank(number)
    }

    /// The entry holding order number `number`, if it waits.
    pub fn slot_at(&self, number: u64) -> Option<u32> {
        self.ranks.entry_at(number)
    }

    /// Gives the entry in `slot` the free order number `number`.
    pub fn renumber(&mut self, slot: u32, number: u64) {
        let entry = self.entries.at_mut(slot);
        let old = std::mem::replace(&mut entry.number, number);
        self.ranks.remove(old);
        self.ranks.place(number, slot);
    }

    /// Order numbers below `next` are handed out or skipped from now on.
    pub fn skip_numbers_to(&mut self, next: u64) {
        self.ranks.skip_to(next);
    }

    /// The next order number to hand out (for encoding).
    pub fn next_number(&self) -> u64 {
        self.ranks.next_number()
    }

    /// Bytes held beyond the struct itself.
    pub fn memory_usage(&self) -> usize {
        self.entries.memory_usage()
            + self.tokens.memory_usage()
            + self.ranks.memory_usage()
            + self.users.memory_usage()
            + self.user_names.memory_usage()
    }

    fn find_user(&self, user: &NameDigest) -> Option<u32> {
        let users = &self.users;
        self.user_names.find(user, |s| &users.at(s).name[..])
    }

    fn user_slot(&mut self, user: &NameDigest) -> u32 {
        if let Some(slot) = self.find_user(user) {
            return slot;
        }
        let slot = self.users.insert(User {
            name: *user,
            first: NONE,
            last: NONE,
            waiting: 0,
        });
        let users = &self.users;
        self.user_names
            .insert(slot, user, |s| &users.at(s).name[..]);
        slot
    }

    /// Takes the entry out of its user's list; returns the user if it has
    /// no entry left, taken out of the user slab (its name still indexed).
    fn unlink_user(&mut self, slot: u32, entry: &Entry) -> Option<(u32, User)> {
        let user = self.users.at(entry.user);
        if user.first == slot {
            let u = self.users.at_mut(entry.user);
            u.first = entry.next_of_user;
        } else {
            let mut at = user.first;
            while self.entries.at(at).next_of_user != slot {
                at = self.entries.at(at).next_of_user;
            }
            self.entries.at_mut(at).next_of_user = entry.next_of_user;
            if self.users.at(entry.user).last == slot {
                self.users.at_mut(entry.user).last = at;
            }
        }
        let u = self.users.at_mut(entry.user);
        u.waiting -= 1;
        if u.waiting > 0 {
            return None;
        }
        let user = self.users.remove(entry.user).expect("user in use");
        Some((entry.user, user))
    }

    fn link_beat(&mut self, slot: u32) {
        let newest = self.newest_beat;
        {
            let e = self.entries.at_mut(slot);
            e.older_beat = newest.unwrap_or(NONE);
            e.newer_beat = NONE;
        }
        match newest {
            Some(n) => self.entries.at_mut(n).newer_beat = slot,
            None => self.oldest_beat = Some(slot),
        }
        self.newest_beat = Some(slot);
    }

    fn unlink_beat(&mut self, slot: u32) {
        let (older, newer) = {
            let e = self.entries.at(slot);
            (e.older_beat, e.newer_beat)
        };
        match older {
            NONE => self.oldest_beat = (newer != NONE).then_some(newer),
            o => self.entries.at_mut(o).newer_beat = newer,
        }
        match newer {
            NONE => self.newest_beat = (older != NONE).then_some(older),
            n => self.entries.at_mut(n).older_beat = older,
        }
    }
}
