// A RocksDB file system for crash tests: it passes everything through to the real one, keeps
// track of what has been made durable, and can then simulate a power loss.
//
// The model (close to what ext4 guarantees, and to RocksDB's own FaultInjectionTestFS):
// - Bytes appended to a file are durable once Sync/Fsync of that file returned.
// - A file created since its directory was last fsync'ed may vanish entirely.
// - Deletions and renames are durable when they return (RocksDB follows each rename it relies
//   on with a directory fsync, so modelling them as lost would only re-test that fsync).
// - A crash point: after `ArmCrash(n)`, the n-th write-side operation (append, sync, file or
//   directory creation, rename, delete, directory fsync) fails, and so does every later one,
//   as if the machine had stopped there. `DropUnsyncedData` then puts the files on disk into
//   the state the power loss would leave; reopening the database afterwards (with any file
//   system) shows whether every acknowledged commit survived.
#pragma once

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>

namespace medvfs::store::test_util {

class PowerLossFileSystem : public rocksdb::FileSystemWrapper {
 public:
  explicit PowerLossFileSystem(std::shared_ptr<rocksdb::FileSystem> base)
      : FileSystemWrapper(std::move(base)) {}

  const char* Name() const override { return "PowerLossFileSystem"; }

  // The operation after `operations` more write-side operations fails, and all after it.
  void ArmCrash(int64_t operations) { countdown_.store(operations); }
  bool crashed() const { return crashed_.load(); }
  // Write-side operations seen so far (to choose crash points from a dry run).
  int64_t operations() const { return operations_.load(); }

  // Truncates every file written through this file system to what was synced, and deletes
  // those created since their directory's last fsync. With `rng`, a random part of each
  // unsynced tail is kept instead (a torn write: some pages reached the disk, some did not).
  void DropUnsyncedData(std::mt19937* rng = nullptr) {
    std::lock_guard lock(mu_);
    for (const auto& [path, state] : files_) {
      std::error_code ec;
      if (!state.entry_durable) {
        std::filesystem::remove(path, ec);
        continue;
      }
      uint64_t keep = state.synced;
      if (rng != nullptr && state.written > state.synced) {
        keep += std::uniform_int_distribution<uint64_t>(0, state.written - state.synced)(*rng);
      }
      if (std::filesystem::exists(path, ec) && std::filesystem::file_size(path, ec) > keep) {
        if (::truncate(path.c_str(), static_cast<off_t>(keep)) != 0) {
          // Nothing better to do in a test helper: the reopen will show it.
        }
      }
    }
    files_.clear();
  }

  rocksdb::IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override {
    if (auto failed = Step(); !failed.ok()) return failed;
    std::unique_ptr<rocksdb::FSWritableFile> file;
    auto status = target()->NewWritableFile(name, options, &file, dbg);
    if (!status.ok()) return status;
    Track(name, /*existing_size=*/0, /*new_file=*/true);
    *result = std::make_unique<TrackedFile>(std::move(file), this, name);
    return status;
  }

  rocksdb::IOStatus ReopenWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override {
    if (auto failed = Step(); !failed.ok()) return failed;
    std::error_code ec;
    const bool existed = std::filesystem::exists(name, ec);
    const uint64_t size = existed ? std::filesystem::file_size(name, ec) : 0;
    std::unique_ptr<rocksdb::FSWritableFile> file;
    auto status = target()->ReopenWritableFile(name, options, &file, dbg);
    if (!status.ok()) return status;
    Track(name, size, !existed);
    *result = std::make_unique<TrackedFile>(std::move(file), this, name);
    return status;
  }

  rocksdb::IOStatus ReuseWritableFile(const std::string& name, const std::string& old_name,
                                      const rocksdb::FileOptions& options,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) override {
    if (auto failed = Step(); !failed.ok()) return failed;
    std::unique_ptr<rocksdb::FSWritableFile> file;
    auto status = target()->ReuseWritableFile(name, old_name, options, &file, dbg);
    if (!status.ok()) return status;
    Forget(old_name);
    Track(name, 0, /*new_file=*/true);
    *result = std::make_unique<TrackedFile>(std::move(file), this, name);
    return status;
  }

  rocksdb::IOStatus NewDirectory(const std::string& name, const rocksdb::IOOptions& options,
                                 std::unique_ptr<rocksdb::FSDirectory>* result,
                                 rocksdb::IODebugContext* dbg) override {
    std::unique_ptr<rocksdb::FSDirectory> dir;
    auto status = target()->NewDirectory(name, options, &dir, dbg);
    if (!status.ok()) return status;
    *result = std::make_unique<TrackedDirectory>(std::move(dir), this, name);
    return status;
  }

  rocksdb::IOStatus DeleteFile(const std::string& name, const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override {
    if (auto failed = Step(); !failed.ok()) return failed;
    auto status = target()->DeleteFile(name, options, dbg);
    if (status.ok()) Forget(name);
    return status;
  }

  rocksdb::IOStatus RenameFile(const std::string& from, const std::string& to,
                               const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override {
    if (auto failed = Step(); !failed.ok()) return failed;
    auto status = target()->RenameFile(from, to, options, dbg);
    if (status.ok()) {
      std::lock_guard lock(mu_);
      auto node = files_.extract(Normal(from));
      files_.erase(Normal(to));
      if (!node.empty()) {
        node.key() = Normal(to);
        node.mapped().entry_durable = true;  // see the model above
        files_.insert(std::move(node));
      }
    }
    return status;
  }

 private:
  struct FileState {
    uint64_t written = 0;  // bytes in the file now
    uint64_t synced = 0;   // bytes a power loss keeps
    bool entry_durable = false;
  };

  static std::string Normal(const std::string& path) {
    return std::filesystem::path(path).lexically_normal().string();
  }

  // Counts one write-side operation; fails it (and all later ones) at the crash point.
  rocksdb::IOStatus Step() {
    operations_.fetch_add(1);
    if (crashed_.load()) return rocksdb::IOStatus::IOError("simulated power loss");
    if (countdown_.load() > 0 && countdown_.fetch_sub(1) == 1) {
      crashed_.store(true);
      return rocksdb::IOStatus::IOError("simulated power loss");
    }
    return rocksdb::IOStatus::OK();
  }

  void Track(const std::string& name, uint64_t existing_size, bool new_file) {
    std::lock_guard lock(mu_);
    FileState& state = files_[Normal(name)];
    state.written = existing_size;
    state.synced = existing_size;
    state.entry_durable = !new_file;
  }
  void Forget(const std::string& name) {
    std::lock_guard lock(mu_);
    files_.erase(Normal(name));
  }
  void Appended(const std::string& name, uint64_t bytes) {
    std::lock_guard lock(mu_);
    auto it = files_.find(Normal(name));
    if (it != files_.end()) it->second.written += bytes;
  }
  void Truncated(const std::string& name, uint64_t size) {
    std::lock_guard lock(mu_);
    auto it = files_.find(Normal(name));
    if (it == files_.end()) return;
    it->second.written = size;
    if (it->second.synced > size) it->second.synced = size;
  }
  void Synced(const std::string& name) {
    std::lock_guard lock(mu_);
    auto it = files_.find(Normal(name));
    if (it != files_.end()) it->second.synced = it->second.written;
  }
  void DirectorySynced(const std::string& dir) {
    std::lock_guard lock(mu_);
    const std::string prefix = Normal(dir) + "/";
    for (auto& [path, state] : files_) {
      if (path.compare(0, prefix.size(), prefix) == 0 &&
          path.find('/', prefix.size()) == std::string::npos) {
        state.entry_durable = true;
      }
    }
  }

  class TrackedFile : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    TrackedFile(std::unique_ptr<rocksdb::FSWritableFile> file, PowerLossFileSystem* fs,
                std::string name)
        : FSWritableFileOwnerWrapper(std::move(file)), fs_(fs), name_(std::move(name)) {}

    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override {
      if (auto failed = fs_->Step(); !failed.ok()) return failed;
      auto status = FSWritableFileOwnerWrapper::Append(data, options, dbg);
      if (status.ok()) fs_->Appended(name_, data.size());
      return status;
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                             const rocksdb::DataVerificationInfo& info,
                             rocksdb::IODebugContext* dbg) override {
      if (auto failed = fs_->Step(); !failed.ok()) return failed;
      auto status = FSWritableFileOwnerWrapper::Append(data, options, info, dbg);
      if (status.ok()) fs_->Appended(name_, data.size());
      return status;
    }
    rocksdb::IOStatus PositionedAppend(const rocksdb::Slice&, uint64_t, const rocksdb::IOOptions&,
                                       rocksdb::IODebugContext*) override {
      return rocksdb::IOStatus::NotSupported("PowerLossFileSystem: positioned appends");
    }
    rocksdb::IOStatus PositionedAppend(const rocksdb::Slice&, uint64_t, const rocksdb::IOOptions&,
                                       const rocksdb::DataVerificationInfo&,
                                       rocksdb::IODebugContext*) override {
      return rocksdb::IOStatus::NotSupported("PowerLossFileSystem: positioned appends");
    }
    rocksdb::IOStatus Truncate(uint64_t size, const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override {
      if (auto failed = fs_->Step(); !failed.ok()) return failed;
      auto status = FSWritableFileOwnerWrapper::Truncate(size, options, dbg);
      if (status.ok()) fs_->Truncated(name_, size);
      return status;
    }
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
      if (auto failed = fs_->Step(); !failed.ok()) return failed;
      auto status = FSWritableFileOwnerWrapper::Sync(options, dbg);
      if (status.ok()) fs_->Synced(name_);
      return status;
    }
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                            rocksdb::IODebugContext* dbg) override {
      if (auto failed = fs_->Step(); !failed.ok()) return failed;
      auto status = FSWritableFileOwnerWrapper::Fsync(options, dbg);
      if (status.ok()) fs_->Synced(name_);
      return status;
    }
    // RangeSync (sync_file_range) is a hint to start writeback, not a durability point.

   private:
    PowerLossFileSystem* fs_;
    std::string name_;
  };

  class TrackedDirectory : public rocksdb::FSDirectory {
   public:
    TrackedDirectory(std::unique_ptr<rocksdb::FSDirectory> dir, PowerLossFileSystem* fs,
                     std::string name)
        : dir_(std::move(dir)), fs_(fs), name_(std::move(name)) {}
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                            rocksdb::IODebugContext* dbg) override {
      if (auto failed = fs_->Step(); !failed.ok()) return failed;
      auto status = dir_->Fsync(options, dbg);
      if (status.ok()) fs_->DirectorySynced(name_);
      return status;
    }
    rocksdb::IOStatus FsyncWithDirOptions(const rocksdb::IOOptions& options,
                                          rocksdb::IODebugContext* dbg,
                                          const rocksdb::DirFsyncOptions& dir_options) override {
      if (auto failed = fs_->Step(); !failed.ok()) return failed;
      auto status = dir_->FsyncWithDirOptions(options, dbg, dir_options);
      if (status.ok()) fs_->DirectorySynced(name_);
      return status;
    }
    rocksdb::IOStatus Close(const rocksdb::IOOptions& options,
                            rocksdb::IODebugContext* dbg) override {
      return dir_->Close(options, dbg);
    }
    size_t GetUniqueId(char* id, size_t max_size) const override {
      return dir_->GetUniqueId(id, max_size);
    }

   private:
    std::unique_ptr<rocksdb::FSDirectory> dir_;
    PowerLossFileSystem* fs_;
    std::string name_;
  };

  std::mutex mu_;
  std::map<std::string, FileState> files_;  // files written through this file system
  std::atomic<int64_t> countdown_{0};       // 0: not armed
  std::atomic<int64_t> operations_{0};
  std::atomic<bool> crashed_{false};
};

}  // namespace medvfs::store::test_util
