//! The message sequence counter: it never goes back, across reboots and crashes, and it writes the
//! non-volatile store only once every [`LEASE`] messages.
//!
//! The store holds one value per counter, the lease: every number below it may already have been
//! sent, none at or above it has. Before handing out a number at or above the lease, the counter
//! writes a new lease of `next + LEASE`, and only hands the number out once that write succeeded.
//! On boot the counter starts at the stored lease, so after a crash at any point a number is never
//! used twice; the price is a gap of at most `LEASE` numbers per reboot.
//!
//! ```text
//! store: (erased)   boot -> next 1, nothing reserved
//! next() -> write 1025, then 1;  next() -> 2;  ...  next() -> 1024
//! next() -> write 2049, then 1025                     (10,000 messages cost 10 writes)
//! crash at 1500, reboot -> next 2049
//! ```
//!
//! An erased store starts at 1, so a gateway can use 0 for "nothing seen yet".

use core::fmt;

use crate::hal::NvStore;

/// How many numbers one write of the store reserves.
pub const LEASE: u64 = 1024;
/// The first number a device with an erased store sends.
pub const FIRST: u64 = 1;

/// Why no number could be handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqError<E> {
    /// The store failed to read (at boot) or to write a new lease.
    Store(E),
    /// The stored lease is so close to `u64::MAX` that no new lease fits (a corrupt store).
    Exhausted,
}

impl<E: fmt::Debug> fmt::Display for SeqError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(e) => write!(f, "the sequence store failed: {e:?}"),
            Self::Exhausted => f.write_str("the sequence counter is exhausted (corrupt store?)"),
        }
    }
}

/// A per-device message counter kept in one slot of an [`NvStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeqCounter {
    slot: u8,
    next: u64,
    /// The lease in the store: numbers below it may be handed out without writing.
    reserved: u64,
}

impl SeqCounter {
    /// Reads the lease from `slot` and starts there (at [`FIRST`] if the slot is erased).
    pub fn boot<S: NvStore>(store: &mut S, slot: u8) -> Result<Self, SeqError<S::Error>> {
        let next = store.read(slot).map_err(SeqError::Store)?.unwrap_or(FIRST);
        Ok(Self {
            slot,
            next,
            reserved: next,
        })
    }

    /// Hands out the next number, first extending the lease in the store when it runs out.
    ///
    /// On an error nothing is handed out and the counter is unchanged, so the next call tries again.
    pub fn next<S: NvStore>(&mut self, store: &mut S) -> Result<u64, SeqError<S::Error>> {
        if self.next >= self.reserved {
            let reserved = self.next.checked_add(LEASE).ok_or(SeqError::Exhausted)?;
            store.write(self.slot, reserved).map_err(SeqError::Store)?;
            self.reserved = reserved;
        }
        let seq = self.next;
        self.next += 1;
        Ok(seq)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// An in-memory store that counts writes and can be told to fail.
    #[derive(Debug, Default)]
    pub(crate) struct MemStore {
        pub(crate) slots: HashMap<u8, u64>,
        pub(crate) writes: usize,
        pub(crate) fail: bool,
    }

    /// The in-memory store's only error.
    #[derive(Debug, PartialEq, Eq)]
    pub(crate) struct Worn;

    impl NvStore for MemStore {
        type Error = Worn;

        fn read(&mut self, slot: u8) -> Result<Option<u64>, Worn> {
            if self.fail {
                return Err(Worn);
            }
            Ok(self.slots.get(&slot).copied())
        }

        fn write(&mut self, slot: u8, value: u64) -> Result<(), Worn> {
            if self.fail {
                return Err(Worn);
            }
            self.writes += 1;
            self.slots.insert(slot, value);
            Ok(())
        }
    }

    #[test]
    fn an_erased_store_starts_at_one_and_reserves_a_lease_first() {
        let mut store = MemStore::default();
        let mut seq = SeqCounter::boot(&mut store, 3).unwrap();
        assert_eq!(store.writes, 0);
        assert_eq!(seq.next(&mut store), Ok(1));
        assert_eq!(seq.next(&mut store), Ok(2));
        assert_eq!(store.slots, HashMap::from([(3, 1 + LEASE)]));
        assert_eq!(store.writes, 1);
    }

    #[test]
    fn ten_thousand_messages_cost_ten_writes() {
        let mut store = MemStore::default();
        let mut seq = SeqCounter::boot(&mut store, 0).unwrap();
        for want in 1..=10_000 {
            assert_eq!(seq.next(&mut store), Ok(want));
        }
        assert_eq!(store.writes, 10);
        assert_eq!(store.slots[&0], 1 + 10 * LEASE);
    }

    #[test]
    fn a_reboot_starts_at_the_stored_lease() {
        let mut store = MemStore::default();
        let mut seq = SeqCounter::boot(&mut store, 0).unwrap();
        for _ in 0..5 {
            seq.next(&mut store).unwrap();
        }
        let mut seq = SeqCounter::boot(&mut store, 0).unwrap();
        assert_eq!(seq.next(&mut store), Ok(1 + LEASE));
        assert_eq!(store.slots[&0], 1 + 2 * LEASE);
    }

    #[test]
    fn a_failed_write_hands_out_nothing_beyond_the_lease() {
        let mut store = MemStore::default();
        let mut seq = SeqCounter::boot(&mut store, 0).unwrap();
        for _ in 1..LEASE {
            seq.next(&mut store).unwrap();
        }
        assert_eq!(seq.next(&mut store), Ok(LEASE));
        store.fail = true;
        assert_eq!(seq.next(&mut store), Err(SeqError::Store(Worn)));
        assert_eq!(seq.next(&mut store), Err(SeqError::Store(Worn)));
        store.fail = false;
        assert_eq!(seq.next(&mut store), Ok(1 + LEASE));
    }

    #[test]
    fn a_failed_read_at_boot_is_an_error() {
        let mut store = MemStore {
            fail: true,
            ..MemStore::default()
        };
        assert_eq!(SeqCounter::boot(&mut store, 0), Err(SeqError::Store(Worn)));
    }

    #[test]
    fn a_lease_that_cannot_grow_is_exhausted_not_wrapped() {
        let mut store = MemStore::default();
        store.slots.insert(0, u64::MAX - 5);
        let mut seq = SeqCounter::boot(&mut store, 0).unwrap();
        assert_eq!(seq.next(&mut store), Err(SeqError::Exhausted));
        assert_eq!(store.writes, 0);
    }

    proptest! {
        /// Each run is a list of boots; each boot hands out some numbers, with the store failing
        /// for some of them, and then the node crashes (the counter is dropped with no goodbye).
        #[test]
        fn no_number_is_ever_reused_across_crashes(
            boots in prop::collection::vec(prop::collection::vec(any::<bool>(), 0..3000), 1..8)
        ) {
            let mut store = MemStore::default();
            let mut last = 0u64;
            for failures in boots {
                let mut seq = SeqCounter::boot(&mut store, 0).unwrap();
                for fail in failures {
                    store.fail = fail;
                    match seq.next(&mut store) {
                        Ok(n) => {
                            prop_assert!(n > last, "{} after {}", n, last);
                            prop_assert!(n < store.slots[&0], "{} handed out beyond the lease", n);
                            last = n;
                        }
                        Err(e) => prop_assert!(fail, "unexpected {:?}", e),
                    }
                }
                store.fail = false;
            }
        }
    }
}
