// The lock order of the store, in one place. A thread that holds a lock may take only locks
// below it in this list (or a lock marked as a leaf, holding nothing else while in it).
// Every lock is a std::mutex unless said otherwise. ThreadSanitizer checks the order in
// .ci/tsan (lock-order inversions fail the run).
//
// -1. ArchiveImpl::remote_mu_ (store/archive/archive_impl.h): held for a whole replication
//     round to an S3 remote, which takes gc_mu_ while it makes a snapshot; no lock below is
//     held while a round talks to the network.
//  0. ArchiveImpl::gc_mu_ (store/archive/archive_impl.h): held for a whole garbage collection
//     or backup, which take the locks below as any writer does.
//  1. WriteSession::mu (store/archive/archive_impl.h): one file's pending content.
//  2. ArchiveImpl::mu_ (std::shared_mutex): the meta records as one consistent state, the
//     id counters, sessions_ and orphans_. Changes take it exclusively and write one batch
//     under it; reads that only look (getattr, lookup, readdir, readlink, xattrs, reads of
//     closed files and versions, paths for audit entries) take it shared, so they run in
//     parallel with each other. RocksDB and the chunk store are thread-safe on their own:
//     chunk reads and stores, and every sync, happen outside it.
//     2a. ArchiveImpl::lookups_mu_ (leaf): lookups_ when changed under a shared mu_.
//  3. ChunkStore::index_mu_, then ChunkStore::mu_, then ChunkStore::cache_mu_
//     (store/engine/chunk_store.h); ChunkStore::durable_mu_ is taken alone (never with
//     another of its locks held) and only waits; read_ahead_mu_ is a leaf.
//  4. KvStore::Rep::before_durable_mu (store/engine/kv_store_rep.h): held while the hook runs
//     (a log sync, a Write with sync, or RocksDB's flush thread), which takes
//  5. PackStore::sync_mu_, then an OpenPack's mu, then PackStore::mu_
//     (store/engine/pack_store.h); readers_mu_ is a leaf. Nothing under these calls RocksDB,
//     so a flush waiting for them never waits for a write that waits for the flush.
//  6. KvStore::Rep::sync_mu (leaf; the group sync only waits under it).
//
// Leaves: ArchiveImpl::audit_mu_ (may be taken with mu_ held), ArchiveImpl::high_water_mu_
// (never with audit_mu_), ArchiveImpl::background_sync_mu_ (never held while syncing),
// PendingContent's Intake::mu (its worker stores chunks without it), the failure_mu of
// KvStore, ArchiveImpl::remote_status_mu_, and RemotePackCache's Rep::mu
// (store/archive/remote_pack_cache.h: never held while fetching from the bucket or reading a
// block; PackStore reads through it with readers_mu_ released). DirtyBudget
// (store/engine/content.h) is lock-free.
#pragma once
