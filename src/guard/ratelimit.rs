//! Token buckets: [`TokenBucket`] for one connection's message rate, and [`IpRateLimiter`],
//! the node-wide per-client-IP limit on WebSocket upgrade attempts shared by every worker.
//!
//! Owns the bucket arithmetic and the limiter's bounded table. It reads no clock: every call
//! takes `now_ms`, a monotonic millisecond count. It must not be put on the message path of
//! the shared limiter (a connection's own [`TokenBucket`] is the message-path tool).
//!
//! Units: a rate is whole tokens per second, a burst whole tokens (the bucket's capacity; a new
//! bucket starts full). Tokens are kept in thousandths, so `elapsed_ms × rate` thousandths are
//! added exactly: integer arithmetic, no rounding, no drift, whatever the rate.

use std::collections::hash_map::{Entry, RandomState};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Thousandths of a token per token.
const MILLI: u32 = 1000;

/// A rate limit: `per_second` tokens are added each second up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Tokens added per second; always >= 1.
    per_second: u16,
    /// Capacity in tokens; always >= 1.
    burst: u16,
}

/// A rate limit that cannot be represented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    /// The rate is 0 or above 65535 per second.
    #[error("rate must be 1..=65535 per second, got {0}")]
    Rate(u32),
    /// The burst is 0 or above 65535.
    #[error("burst must be 1..=65535, got {0}")]
    Burst(u32),
}

impl RateLimit {
    /// `per_second` tokens per second (1..=65535), at most `burst` (1..=65535) at once.
    pub fn new(per_second: u32, burst: u32) -> Result<Self, RateLimitError> {
        let per_second = u16::try_from(per_second)
            .ok()
            .filter(|r| *r > 0)
            .ok_or(RateLimitError::Rate(per_second))?;
        let burst = u16::try_from(burst)
            .ok()
            .filter(|b| *b > 0)
            .ok_or(RateLimitError::Burst(burst))?;
        Ok(Self { per_second, burst })
    }

    /// Tokens per second.
    pub fn per_second(&self) -> u32 {
        u32::from(self.per_second)
    }

    /// Capacity in tokens.
    pub fn burst(&self) -> u32 {
        u32::from(self.burst)
    }

    /// Capacity in thousandths.
    fn capacity(&self) -> u32 {
        u32::from(self.burst) * MILLI
    }

    /// Milliseconds for one token to be added (rounded up).
    fn ms_per_token(&self) -> u64 {
        u64::from(MILLI).div_ceil(u64::from(self.per_second))
    }
}

/// A token bucket in 16 bytes (rate and burst included): one per chat connection for its
/// message rate. Starts full.
///
/// `now_ms` must come from one monotonic millisecond clock for the bucket's life; if it goes
/// backwards, no time is taken to have passed (the bucket never gains from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    /// `now_ms` of the last refill.
    last_ms: u64,
    /// Tokens in thousandths; always <= `limit.capacity()` (at most 65,535,000).
    milli_tokens: u32,
    /// Rate and capacity.
    limit: RateLimit,
}

impl TokenBucket {
    /// A full bucket at `now_ms`.
    pub fn new(limit: RateLimit, now_ms: u64) -> Self {
        Self {
            last_ms: now_ms,
            milli_tokens: limit.capacity(),
            limit,
        }
    }

    /// Takes one token if there is one; false (and nothing changes but the refill) if not.
    pub fn try_take(&mut self, now_ms: u64) -> bool {
        self.refill(now_ms);
        if self.milli_tokens >= MILLI {
            self.milli_tokens -= MILLI;
            true
        } else {
            false
        }
    }

    /// True when the bucket would be full at `now_ms` (it then holds no state worth keeping:
    /// a new bucket would be identical).
    pub fn is_full(&self, now_ms: u64) -> bool {
        self.milli_tokens_at(now_ms) == self.limit.capacity()
    }

    /// Whole tokens available at `now_ms`.
    pub fn tokens(&self, now_ms: u64) -> u32 {
        self.milli_tokens_at(now_ms) / MILLI
    }

    /// The bucket's limit.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    fn milli_tokens_at(&self, now_ms: u64) -> u32 {
        let elapsed = now_ms.saturating_sub(self.last_ms);
        // elapsed × rate thousandths: exact, saturating far beyond the capacity.
        let added = elapsed.saturating_mul(u64::from(self.limit.per_second));
        let total = u64::from(self.milli_tokens).saturating_add(added);
        total.min(u64::from(self.limit.capacity())) as u32
    }

    fn refill(&mut self, now_ms: u64) {
        self.milli_tokens = self.milli_tokens_at(now_ms);
        self.last_ms = self.last_ms.max(now_ms);
    }
}

/// Which bucket a client address counts against: an IPv4 address, or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum IpKey {
    V4(u32),
    /// The first 64 bits of the address.
    V6(u64),
}

impl IpKey {
    fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::V4(u32::from(v4)),
            IpAddr::V6(v6) => Self::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

/// Number of independently locked shards of the [`IpRateLimiter`] table.
pub const IP_SHARDS: usize = 64;

/// Default cap on entries per shard: 64 × 2048 = 131,072 clients. An entry is 32 bytes (key
/// and bucket) in a hash table of at most 4096 slots per shard: under 9 MiB when every shard
/// is full.
pub const DEFAULT_MAX_ENTRIES_PER_SHARD: usize = 2048;

struct Shard {
    map: HashMap<IpKey, TokenBucket>,
    /// The next `now_ms` at which a full shard may be pruned again.
    next_prune_ms: u64,
}

/// The node-wide limit on upgrade attempts per client: one token bucket per IPv4 address and
/// per IPv6 /64 (a host gets a whole /64 and can pick any address in it, so a per-address
/// limit would be no limit; IPv4-mapped IPv6 addresses count as their IPv4 address).
///
/// Shared by all workers (`Arc<IpRateLimiter>`). It sits on the handshake path only, never on
/// the message path, which is why a lock is acceptable: an upgrade already costs an accept, a
/// request parse, a SHA-1 and several syscalls, while the critical section here is one hash
/// lookup and a few integer operations (O(1); the table never grows past its cap, so neither
/// do rehashes). The table is split into [`IP_SHARDS`] mutexes chosen by a keyed hash, so two
/// workers rarely meet on one lock. The hash (std's SipHash with a random key) also keeps
/// spoofed addresses from being chosen to collide.
///
/// Memory is bounded:
/// - an entry whose bucket has refilled to full holds nothing a new bucket would not, and is
///   removed by [`IpRateLimiter::prune`] (call it from a periodic sweep; one worker is enough)
///   and, when a shard is at its cap, by an opportunistic prune of that shard (at most once per
///   token interval, so a flood cannot make every handshake scan the shard);
/// - each shard holds at most `max_entries_per_shard` entries. When a shard is full even after
///   pruning, a client without an entry is **allowed without one** (counted in
///   [`IpRateLimiter::overflowed`]): the clients already tracked, abusers with empty buckets
///   included, keep their limits, nothing is evicted, and a flood of fresh addresses (say
///   spoofed `X-Forwarded-For` values passed on by a trusted proxy, or one attacker's IPv6
///   /48 of 65,536 /64s) can at worst get the flood's own newcomers through unlimited while
///   the table is full — it cannot reset anyone's bucket or grow memory. A flood of that size
///   is for `--max-connections` to absorb, not for per-IP limits.
pub struct IpRateLimiter {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    limit: RateLimit,
    max_entries_per_shard: usize,
    overflowed: AtomicU64,
}

impl std::fmt::Debug for IpRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpRateLimiter")
            .field("limit", &self.limit)
            .field("max_entries_per_shard", &self.max_entries_per_shard)
            .field("len", &self.len())
            .finish()
    }
}

impl IpRateLimiter {
    /// A limiter with `limit` per client and at most `max_entries_per_shard` (at least 1)
    /// clients per shard ([`DEFAULT_MAX_ENTRIES_PER_SHARD`] is a good default).
    pub fn new(limit: RateLimit, max_entries_per_shard: usize) -> Self {
        let shards = (0..IP_SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    map: HashMap::new(),
                    next_prune_ms: 0,
                })
            })
            .collect();
        Self {
            shards,
            hasher: RandomState::new(),
            limit,
            max_entries_per_shard: max_entries_per_shard.max(1),
            overflowed: AtomicU64::new(0),
        }
    }

    /// Takes a token for `ip` at `now_ms`: true when the attempt is allowed. Every upgrade
    /// attempt calls this once, whether it is accepted afterwards or not.
    ///
    /// `now_ms` must come from one monotonic clock shared by every caller (e.g. milliseconds
    /// since a process-wide `Instant`), not from per-worker clocks with different origins.
    pub fn try_take(&self, ip: IpAddr, now_ms: u64) -> bool {
        let key = IpKey::of(ip);
        let mut shard = self.lock(key);
        let cap = self.max_entries_per_shard;
        if shard.map.len() >= cap && !shard.map.contains_key(&key) && now_ms >= shard.next_prune_ms
        {
            shard.map.retain(|_, b| !b.is_full(now_ms));
            shard.next_prune_ms = now_ms.saturating_add(self.limit.ms_per_token());
        }
        let len = shard.map.len();
        match shard.map.entry(key) {
            Entry::Occupied(mut e) => e.get_mut().try_take(now_ms),
            Entry::Vacant(e) if len < cap => e
                .insert(TokenBucket::new(self.limit, now_ms))
                .try_take(now_ms),
            Entry::Vacant(_) => {
                self.overflowed.fetch_add(1, Ordering::Relaxed);
                true
            }
        }
    }

    /// Removes every entry whose bucket is full at `now_ms`; returns how many were removed.
    /// Locks one shard at a time.
    pub fn prune(&self, now_ms: u64) -> usize {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            let before = shard.map.len();
            shard.map.retain(|_, b| !b.is_full(now_ms));
            removed += before - shard.map.len();
        }
        removed
    }

    /// Entries held (clients not known to be full).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).map.len())
            .sum()
    }

    /// True when no client is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Attempts allowed without an entry because their shard was full (a monotonic count, for
    /// metrics).
    pub fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }

    /// The limit every client gets.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    fn shard_index(&self, key: IpKey) -> usize {
        (self.hasher.hash_one(key) % IP_SHARDS as u64) as usize
    }

    fn lock(&self, key: IpKey) -> std::sync::MutexGuard<'_, Shard> {
        let index = self.shard_index(key);
        // A panic while holding a shard cannot leave a bucket half-updated in a way that
        // matters (each update is a couple of integer stores), so a poisoned lock is used as is.
        self.shards[index].lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    fn limit(rate: u32, burst: u32) -> RateLimit {
        RateLimit::new(rate, burst).unwrap()
    }

    #[test]
    fn bucket_is_16_bytes() {
        assert_eq!(std::mem::size_of::<TokenBucket>(), 16);
        assert_eq!(std::mem::size_of::<RateLimit>(), 4);
        assert_eq!(std::mem::size_of::<(IpKey, TokenBucket)>(), 32);
        fn shared<T: Send + Sync>() {}
        shared::<IpRateLimiter>();
    }

    #[test]
    fn rate_limit_bounds() {
        assert_eq!(RateLimit::new(0, 1), Err(RateLimitError::Rate(0)));
        assert_eq!(RateLimit::new(65536, 1), Err(RateLimitError::Rate(65536)));
        assert_eq!(RateLimit::new(1, 0), Err(RateLimitError::Burst(0)));
        assert_eq!(RateLimit::new(1, 70000), Err(RateLimitError::Burst(70000)));
        let l = limit(65535, 65535);
        assert_eq!((l.per_second(), l.burst()), (65535, 65535));
        assert_eq!(
            RateLimitError::Rate(0).to_string(),
            "rate must be 1..=65535 per second, got 0"
        );
    }

    #[test]
    fn burst_then_rate() {
        // 20/s, burst 40: the defaults of --msg-rate/--msg-burst.
        let mut b = TokenBucket::new(limit(20, 40), 1000);
        for i in 0..40 {
            assert!(b.try_take(1000), "token {i}");
        }
        assert!(!b.try_take(1000));
        assert!(!b.try_take(1049), "one token takes 50 ms");
        assert!(b.try_take(1050));
        assert!(!b.try_take(1050));
        // A second later: 20 more, not 21.
        assert_eq!(b.tokens(2050), 20);
        for _ in 0..20 {
            assert!(b.try_take(2050));
        }
        assert!(!b.try_take(2050));
        // Long idle: capped at the burst.
        assert_eq!(b.tokens(1_000_000), 40);
        assert!(b.is_full(1_000_000));
        assert!(!b.is_full(2060));
    }

    #[test]
    fn no_drift_with_rates_that_do_not_divide_a_second() {
        // 3/s: one token every 333.33 ms. Taking tokens as soon as they appear, at 1 ms
        // steps for 60 s, yields exactly 3 × 60 tokens after the initial burst.
        let mut b = TokenBucket::new(limit(3, 2), 0);
        assert!(b.try_take(0));
        assert!(b.try_take(0));
        let mut taken = 0;
        for t in 1..=60_000 {
            if b.try_take(t) {
                taken += 1;
            }
        }
        assert_eq!(taken, 180);
        // 7/s over an hour of 1 ms polls.
        let mut b = TokenBucket::new(limit(7, 2), 0);
        let mut taken = 0;
        for t in 0..=3_600_000u64 {
            if b.try_take(t) {
                taken += 1;
            }
        }
        assert_eq!(taken, 2 + 7 * 3600);
    }

    #[test]
    fn clock_going_backwards_adds_nothing() {
        let mut b = TokenBucket::new(limit(10, 1), 10_000);
        assert!(b.try_take(10_000));
        assert!(!b.try_take(5_000));
        assert!(
            !b.try_take(10_050),
            "the refill is measured from the latest now"
        );
        assert!(b.try_take(10_100));
    }

    #[test]
    fn extreme_times_saturate() {
        let mut b = TokenBucket::new(limit(65535, 65535), 0);
        assert!(b.try_take(u64::MAX));
        assert_eq!(b.tokens(u64::MAX), 65534);
        let mut b = TokenBucket::new(limit(1, 1), u64::MAX);
        assert!(b.try_take(u64::MAX));
        assert!(!b.try_take(u64::MAX));
    }

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    fn v6(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_ip_limit() {
        let l = IpRateLimiter::new(limit(1, 3), 100);
        let a = v4(192, 0, 2, 1);
        let b = v4(192, 0, 2, 2);
        for _ in 0..3 {
            assert!(l.try_take(a, 0));
        }
        assert!(!l.try_take(a, 0));
        assert!(!l.try_take(a, 999));
        assert!(l.try_take(b, 0), "another address has its own bucket");
        assert!(l.try_take(a, 1000));
        assert!(!l.try_take(a, 1000));
        assert_eq!(l.len(), 2);
        assert_eq!(l.limit(), limit(1, 3));
    }

    #[test]
    fn ipv6_is_limited_per_64_and_mapped_v4_as_v4() {
        let l = IpRateLimiter::new(limit(1, 2), 100);
        assert!(l.try_take(v6("2001:db8:1:2::1"), 0));
        assert!(l.try_take(v6("2001:db8:1:2:ffff:ffff:ffff:ffff"), 0));
        assert!(!l.try_take(v6("2001:db8:1:2:abcd::9"), 0), "same /64");
        assert!(l.try_take(v6("2001:db8:1:3::1"), 0), "next /64");
        assert!(l.try_take(v6("::ffff:192.0.2.7"), 0));
        assert!(l.try_take(v4(192, 0, 2, 7), 0));
        assert!(
            !l.try_take(v4(192, 0, 2, 7), 0),
            "mapped and plain share a bucket"
        );
        assert!(l.try_take(v4(192, 0, 2, 8), 0));
        // Neither IPv4 nor its mapped form shares a bucket with the IPv6 /64 `::/64`.
        let m = IpRateLimiter::new(limit(1, 1), 100);
        assert!(m.try_take(v6("::1"), 0));
        assert!(m.try_take(v4(0, 0, 0, 1), 0));
        assert!(!m.try_take(v6("::2"), 0));
    }

    #[test]
    fn prune_removes_exactly_the_full_buckets() {
        let l = IpRateLimiter::new(limit(10, 5), 100);
        assert!(l.try_take(v4(10, 0, 0, 1), 0));
        for _ in 0..5 {
            assert!(l.try_take(v4(10, 0, 0, 2), 0));
        }
        assert!(l.try_take(v4(10, 0, 0, 3), 50));
        assert_eq!(l.len(), 3);
        // At 100 ms: .1 has refilled its one token; .2 has 1 of 5; .3 has 4.5 of 5.
        assert_eq!(l.prune(100), 1);
        assert_eq!(l.len(), 2);
        // .1 comes back with a fresh full bucket, as if it had been kept.
        for _ in 0..5 {
            assert!(l.try_take(v4(10, 0, 0, 1), 100));
        }
        assert!(!l.try_take(v4(10, 0, 0, 1), 100));
        assert_eq!(l.prune(150), 1, ".3 is full at 150 ms");
        assert_eq!(l.prune(10_000), 2);
        assert!(l.is_empty());
    }

    /// `n` addresses that land in one shard (shards are chosen by a randomly keyed hash).
    fn same_shard(l: &IpRateLimiter, n: usize) -> Vec<IpAddr> {
        let first = v4(10, 0, 0, 0);
        let shard = l.shard_index(IpKey::of(first));
        (0u32..)
            .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)))
            .filter(|ip| l.shard_index(IpKey::of(*ip)) == shard)
            .take(n)
            .collect()
    }

    #[test]
    fn a_full_shard_allows_newcomers_without_entries_and_keeps_limits() {
        let l = IpRateLimiter::new(limit(1, 2), 2);
        let ips = same_shard(&l, 1002);
        let (tracked, flood) = ips.split_at(2);
        for ip in tracked {
            assert!(l.try_take(*ip, 0));
            assert!(l.try_take(*ip, 0));
            assert!(!l.try_take(*ip, 0));
        }
        // A flood of fresh addresses: all allowed, none stored, the table does not grow.
        for ip in flood {
            assert!(l.try_take(*ip, 10));
        }
        assert_eq!(l.len(), 2);
        assert_eq!(l.overflowed(), 1000);
        // The tracked (empty) clients were neither evicted nor reset by the flood.
        for ip in tracked {
            assert!(!l.try_take(*ip, 10), "{ip}");
        }
        // Other shards are unaffected.
        let other = (0u32..)
            .map(|i| IpAddr::V4(Ipv4Addr::from(0xc000_0000 + i)))
            .find(|ip| l.shard_index(IpKey::of(*ip)) != l.shard_index(IpKey::of(tracked[0])))
            .unwrap();
        assert!(l.try_take(other, 10));
        assert_eq!(l.len(), 3);
        assert_eq!(l.overflowed(), 1000);
    }

    #[test]
    fn a_full_shard_is_pruned_when_a_newcomer_arrives() {
        let l = IpRateLimiter::new(limit(1, 1), 1);
        let ips = same_shard(&l, 2);
        let (a, n) = (ips[0], ips[1]);
        assert!(l.try_take(a, 0));
        assert!(l.try_take(n, 999), "a's bucket is not full: n overflows");
        assert_eq!(l.overflowed(), 1);
        // At 1000 ms a is full again: the newcomer prunes it and takes the slot.
        assert!(l.try_take(n, 2000));
        assert_eq!(l.overflowed(), 1);
        assert!(!l.try_take(n, 2000), "n is tracked now");
        assert!(l.try_take(a, 2000), "a is the newcomer now");
        assert_eq!(l.overflowed(), 2);
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn the_shard_prune_is_throttled_to_once_per_token_interval() {
        // 10/s: one token per 100 ms, so a full shard is scanned at most every 100 ms.
        let l = IpRateLimiter::new(limit(10, 2), 1);
        let ips = same_shard(&l, 4);
        assert!(l.try_take(ips[0], 0)); // 1 of 2 tokens left
        assert!(l.try_take(ips[1], 50)); // scans (nothing full), next scan at 150
        assert_eq!(l.overflowed(), 1);
        // At 100 ms ips[0] is full, but the shard may not be scanned before 150 ms.
        assert!(l.try_take(ips[2], 100));
        assert!(l.try_take(ips[2], 149));
        assert_eq!(l.overflowed(), 3);
        assert_eq!(l.len(), 1);
        // At 150 ms the scan removes ips[0] and ips[3] gets its slot.
        assert!(l.try_take(ips[3], 150));
        assert_eq!(l.overflowed(), 3);
        assert!(l.try_take(ips[3], 150));
        assert!(!l.try_take(ips[3], 150));
    }

    #[test]
    fn shared_across_threads() {
        let l = Arc::new(IpRateLimiter::new(limit(1, 100), 1000));
        let allowed: usize = (0..4)
            .map(|_| {
                let l = Arc::clone(&l);
                std::thread::spawn(move || {
                    (0..100).filter(|_| l.try_take(v4(1, 2, 3, 4), 0)).count()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(allowed, 100, "exactly the burst, whatever the interleaving");
        assert!(format!("{l:?}").contains("len: 1"));
    }
}
