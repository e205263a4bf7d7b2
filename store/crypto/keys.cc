#include "store/keys.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "store/file_util.h"

namespace medvfs::store {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

constexpr uint64_t kFormat = 1;
constexpr size_t kArchiveIdSize = 16;
constexpr size_t kSaltSize = 32;
constexpr size_t kWrappedKeySize = kSealOverhead + kKeySize;
constexpr size_t kMinKeyFileSize = 32;
constexpr size_t kMaxKeyFileSize = size_t{1} << 20;
constexpr size_t kMaxSlotFileSize = size_t{64} << 10;
constexpr std::string_view kAadPrefix = "medvfs-keyslot-v1";
constexpr std::string_view kKeyFileKekInfo = "medvfs-keyfile-kek";
constexpr std::string_view kScryptName = "scrypt";
constexpr std::string_view kHkdfName = "hkdf-sha256";

std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

const char* KindName(KeySourceKind kind) {
  return kind == KeySourceKind::kKeyFile ? "keyfile" : "passphrase";
}

// --- The key slot ---------------------------------------------------------------------------

struct KeySlot {
  std::string archive_id;  // kArchiveIdSize raw bytes
  KeySourceKind kind = KeySourceKind::kPassphrase;
  KdfParams params;     // scrypt only
  std::string salt;     // kSaltSize raw bytes
  std::string wrapped;  // nonce || ct || tag of the data key
};

// Binds the wrapped key to its archive and to the kind of secret that wraps it.
std::string WrapAad(const std::string& archive_id, KeySourceKind kind) {
  std::string aad(kAadPrefix);
  aad += archive_id;
  aad += static_cast<char>(kind);
  return aad;
}

std::string Serialize(const KeySlot& slot) {
  Json kdf;
  if (slot.kind == KeySourceKind::kPassphrase) {
    kdf["name"] = kScryptName;
    kdf["n"] = slot.params.n;
    kdf["r"] = slot.params.r;
    kdf["p"] = slot.params.p;
  } else {
    kdf["name"] = kHkdfName;
  }
  kdf["salt"] = HexEncode(AsBytes(slot.salt));
  Json root;
  root["format"] = kFormat;
  root["archive_id"] = HexEncode(AsBytes(slot.archive_id));
  root["kind"] = KindName(slot.kind);
  root["kdf"] = std::move(kdf);
  root["wrapped_key"] = HexEncode(AsBytes(slot.wrapped));
  return root.dump(2) + "\n";
}

Status Malformed(std::string_view what) {
  return Status::Corruption("key slot file is damaged: " + std::string(what));
}

Status GetString(const Json& object, const char* name, std::string* out) {
  auto it = object.find(name);
  if (it == object.end() || !it->is_string()) {
    return Malformed(std::string("field \"") + name + "\" is missing or not a string");
  }
  *out = it->get_ref<const std::string&>();
  return Status::Ok();
}

Status GetUnsigned(const Json& object, const char* name, uint64_t max, uint64_t* out) {
  auto it = object.find(name);
  if (it == object.end() || !it->is_number_unsigned()) {
    return Malformed(std::string("field \"") + name + "\" is missing or not a number");
  }
  const uint64_t value = it->get<uint64_t>();
  if (value > max) return Malformed(std::string("field \"") + name + "\" is out of range");
  *out = value;
  return Status::Ok();
}

Status GetHex(const Json& object, const char* name, size_t size, std::string* out) {
  std::string hex;
  MEDVFS_RETURN_IF_ERROR(GetString(object, name, &hex));
  StatusOr<std::string> bytes = HexDecode(hex);
  if (!bytes.ok() || bytes->size() != size) {
    return Malformed(std::string("field \"") + name + "\" is not " + std::to_string(size) +
                     " hex-encoded bytes");
  }
  *out = std::move(bytes).value();
  return Status::Ok();
}

Status ParseKdf(const Json& kdf, KeySlot* slot) {
  if (!kdf.is_object()) return Malformed("field \"kdf\" is missing or not an object");
  std::string name;
  MEDVFS_RETURN_IF_ERROR(GetString(kdf, "name", &name));
  MEDVFS_RETURN_IF_ERROR(GetHex(kdf, "salt", kSaltSize, &slot->salt));
  if (slot->kind == KeySourceKind::kKeyFile) {
    if (name != kHkdfName) return Malformed("a key file slot must use hkdf-sha256");
    return Status::Ok();
  }
  if (name != kScryptName) return Malformed("a passphrase slot must use scrypt");
  constexpr uint64_t kMax32 = std::numeric_limits<uint32_t>::max();
  uint64_t r = 0;
  uint64_t p = 0;
  MEDVFS_RETURN_IF_ERROR(
      GetUnsigned(kdf, "n", std::numeric_limits<uint64_t>::max(), &slot->params.n));
  MEDVFS_RETURN_IF_ERROR(GetUnsigned(kdf, "r", kMax32, &r));
  MEDVFS_RETURN_IF_ERROR(GetUnsigned(kdf, "p", kMax32, &p));
  slot->params.r = static_cast<uint32_t>(r);
  slot->params.p = static_cast<uint32_t>(p);
  return Status::Ok();
}

Status Parse(std::string_view text, KeySlot* slot) {
  const Json root = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) return Malformed("not a JSON object");
  uint64_t format = 0;
  MEDVFS_RETURN_IF_ERROR(
      GetUnsigned(root, "format", std::numeric_limits<uint64_t>::max(), &format));
  if (format != kFormat) {
    return Status::NotSupported("key slot format " + std::to_string(format) +
                                " is not supported by this version of medvfs");
  }
  MEDVFS_RETURN_IF_ERROR(GetHex(root, "archive_id", kArchiveIdSize, &slot->archive_id));
  std::string kind;
  MEDVFS_RETURN_IF_ERROR(GetString(root, "kind", &kind));
  if (kind == KindName(KeySourceKind::kPassphrase)) {
    slot->kind = KeySourceKind::kPassphrase;
  } else if (kind == KindName(KeySourceKind::kKeyFile)) {
    slot->kind = KeySourceKind::kKeyFile;
  } else {
    return Malformed("field \"kind\" is neither passphrase nor keyfile");
  }
  auto kdf = root.find("kdf");
  if (kdf == root.end()) return Malformed("field \"kdf\" is missing or not an object");
  MEDVFS_RETURN_IF_ERROR(ParseKdf(*kdf, slot));
  return GetHex(root, "wrapped_key", kWrappedKeySize, &slot->wrapped);
}

// --- Key-encryption keys --------------------------------------------------------------------

// A secret good enough to protect a new slot.
Status CheckNewSource(const KeySource& source) {
  if (source.kind() == KeySourceKind::kPassphrase && source.secret().empty()) {
    return Status::Invalid("the passphrase must not be empty");
  }
  if (source.kind() == KeySourceKind::kKeyFile && source.secret().size() < kMinKeyFileSize) {
    return Status::Invalid("the key file must hold at least 32 bytes");
  }
  return Status::Ok();
}

Status DeriveKek(const KeySource& source, const KeySlot& slot, SecretKey* kek) {
  if (slot.kind == KeySourceKind::kKeyFile) {
    *kek = DeriveKeyFromBytes(source.secret(), slot.salt, kKeyFileKekInfo);
    return Status::Ok();
  }
  return DeriveKeyScrypt(source.secret(), slot.salt, slot.params.n, slot.params.r, slot.params.p,
                         kek);
}

// Fills *slot with `data_key` wrapped under a fresh salt and the KEK of `source`.
Status Wrap(const KeySource& source, const KdfParams& params, const std::string& archive_id,
            const SecretKey& data_key, KeySlot* slot) {
  MEDVFS_RETURN_IF_ERROR(CheckNewSource(source));
  slot->archive_id = archive_id;
  slot->kind = source.kind();
  slot->params = params;
  slot->salt.assign(kSaltSize, '\0');
  RandomBytes(std::span<uint8_t>(reinterpret_cast<uint8_t*>(slot->salt.data()), kSaltSize));
  SecretKey kek;
  MEDVFS_RETURN_IF_ERROR(DeriveKek(source, *slot, &kek));
  slot->wrapped.clear();
  const std::string_view key(reinterpret_cast<const char*>(data_key.data()), kKeySize);
  return Seal(kek, WrapAad(archive_id, slot->kind), key, &slot->wrapped);
}

Status Unwrap(const KeySlot& slot, const KeySource& source, SecretKey* data_key) {
  if (slot.kind != source.kind()) {
    return Status::Invalid(slot.kind == KeySourceKind::kPassphrase
                               ? "this archive is unlocked with a passphrase, not a key file"
                               : "this archive is unlocked with a key file, not a passphrase");
  }
  SecretKey kek;
  Status derived = DeriveKek(source, slot, &kek);
  if (!derived.ok()) {
    return Malformed("its key derivation parameters are refused: " + derived.message());
  }
  std::string plain;
  plain.reserve(kWrappedKeySize);  // no reallocation, so no stray copy of the key
  if (!Unseal(kek, WrapAad(slot.archive_id, slot.kind), slot.wrapped, &plain).ok()) {
    WipeString(&plain);
    return Status::WrongKey(slot.kind == KeySourceKind::kPassphrase
                                ? "the passphrase does not unlock this archive"
                                : "the key file does not unlock this archive");
  }
  if (plain.size() != kKeySize) {
    WipeString(&plain);
    return Malformed("the wrapped key has the wrong size");
  }
  std::memcpy(data_key->mutable_data(), plain.data(), kKeySize);
  WipeString(&plain);
  return Status::Ok();
}

// --- Files ----------------------------------------------------------------------------------

// Reads a whole file of at most max_size bytes. Growth copies are wiped, since the file may
// hold a secret. kTooBig when the file is larger.
Status ReadWholeFile(const fs::path& path, size_t max_size, const char* what, std::string* out) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return StatusFromErrno(errno, std::string("cannot open ") + what);
  size_t capacity = 4096;
  struct stat st {};
  if (::fstat(fd.get(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 0) {
    capacity = static_cast<size_t>(st.st_size) + 1;  // + 1 to see EOF without growing
  }
  std::string buffer(std::min(capacity, max_size + 1), '\0');
  size_t used = 0;
  while (true) {
    if (used == buffer.size()) {
      if (used > max_size) {
        WipeString(&buffer);
        return {Code::kTooBig, std::string(what) + " is too large"};
      }
      std::string bigger(std::min(buffer.size() * 2, max_size + 1), '\0');
      std::memcpy(bigger.data(), buffer.data(), used);
      WipeString(&buffer);
      buffer.swap(bigger);
    }
    const ssize_t n = ::read(fd.get(), buffer.data() + used, buffer.size() - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      WipeString(&buffer);
      return StatusFromErrno(err, std::string("cannot read ") + what);
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  buffer.resize(used);
  WipeString(out);
  *out = std::move(buffer);
  WipeString(&buffer);  // what a short buffer left in its in-object storage
  return Status::Ok();
}

fs::path DirectoryOf(const fs::path& file) {
  fs::path dir = file.parent_path();
  return dir.empty() ? fs::path(".") : dir;
}

Status SyncDirectory(const fs::path& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return StatusFromErrno(errno, "cannot open the archive directory");
  if (::fsync(fd.get()) != 0) return StatusFromErrno(errno, "cannot sync the archive directory");
  return Status::Ok();
}

// Creates `path` (which must not exist) with mode 0600 and durable contents.
Status WriteNewFile(const fs::path& path, std::string_view contents) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (fd.get() < 0) return StatusFromErrno(errno, "cannot create the key slot file");
  Status status = Status::Ok();
  if (::fchmod(fd.get(), 0600) != 0) {  // exactly 0600, whatever the umask
    status = StatusFromErrno(errno, "cannot set the key slot file's mode");
  }
  if (status.ok()) {
    if (const int err = WriteAllOrErrno(fd.get(), contents); err != 0) {
      status = StatusFromErrno(err, "cannot write the key slot file");
    }
  }
  if (status.ok() && ::fsync(fd.get()) != 0) {
    status = StatusFromErrno(errno, "cannot sync the key slot file");
  }
  if (status.ok()) status = fd.Close("cannot close the key slot file");
  if (!status.ok()) ::unlink(path.c_str());
  return status;
}

// A fresh, unused name beside `file` for a file that will be renamed or linked over it.
fs::path TempPathFor(const fs::path& file) {
  std::array<uint8_t, 8> suffix{};
  RandomBytes(suffix);
  // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) on "." + std::string.
  std::string name(1, '.');
  name += file.filename().string();
  name += ".tmp-";
  name += HexEncode(suffix);
  return DirectoryOf(file) / name;
}

// Makes `file` appear complete or not at all; kExists if it is already there.
Status PublishNewFile(const fs::path& file, std::string_view contents) {
  const fs::path temp = TempPathFor(file);
  MEDVFS_RETURN_IF_ERROR(WriteNewFile(temp, contents));
  if (::link(temp.c_str(), file.c_str()) == 0) {
    ::unlink(temp.c_str());
    return SyncDirectory(DirectoryOf(file));
  }
  const int err = errno;
  ::unlink(temp.c_str());
  if (err == EEXIST) return Status::Exists("a key slot file already exists");
  if (err != EPERM && err != EOPNOTSUPP && err != ENOSYS) {
    return StatusFromErrno(err, "cannot create the key slot file");
  }
  // No hard links here (FAT, exFAT, some network file systems): create in place.
  MEDVFS_RETURN_IF_ERROR(WriteNewFile(file, contents));
  return SyncDirectory(DirectoryOf(file));
}

// Atomically replaces `file` with `contents`.
Status ReplaceFile(const fs::path& file, std::string_view contents) {
  const fs::path temp = TempPathFor(file);
  MEDVFS_RETURN_IF_ERROR(WriteNewFile(temp, contents));
  if (::rename(temp.c_str(), file.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    return StatusFromErrno(err, "cannot replace the key slot file");
  }
  return SyncDirectory(DirectoryOf(file));
}

// Serialises rewraps of one key slot: without it, two concurrent changes could both succeed
// while only the later one's key remains. An flock on the directory, not on the file, since
// the file is replaced. Readers (UnlockKeySlot) need no lock: the rename is atomic.
Status LockSlotDirectory(const fs::path& file, UniqueFd* lock) {
  UniqueFd fd(::open(DirectoryOf(file).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return StatusFromErrno(errno, "cannot open the archive directory");
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return {Code::kBusy, "another process is changing this archive's key; try again later"};
    }
    return StatusFromErrno(errno, "cannot lock the archive directory");
  }
  lock->Reset(fd.Release());
  return Status::Ok();
}

Status ReadSlot(const fs::path& file, KeySlot* slot) {
  std::string text;
  Status status = ReadWholeFile(file, kMaxSlotFileSize, "the key slot file", &text);
  if (status.code() == Code::kTooBig) return Malformed("the file is too large");
  MEDVFS_RETURN_IF_ERROR(status);
  return Parse(text, slot);
}

}  // namespace

// --- KeySource ------------------------------------------------------------------------------

KeySource::KeySource(KeySourceKind kind, std::string* secret)
    : kind_(kind), secret_(std::move(*secret)) {
  WipeString(secret);  // a short string's bytes stay in its in-object buffer after the move
}

KeySource KeySource::Passphrase(std::string passphrase) {
  return KeySource(KeySourceKind::kPassphrase, &passphrase);
}

KeySource KeySource::KeyFileBytes(std::string bytes) {
  return KeySource(KeySourceKind::kKeyFile, &bytes);
}

StatusOr<KeySource> KeySource::FromKeyFile(const std::filesystem::path& file) {
  std::string bytes;
  Status status = ReadWholeFile(file, kMaxKeyFileSize, "the key file", &bytes);
  if (status.code() == Code::kTooBig) {
    return Status::Invalid("the key file must hold at most 1 MiB");
  }
  MEDVFS_RETURN_IF_ERROR(status);
  if (bytes.size() < kMinKeyFileSize) {
    WipeString(&bytes);
    return Status::Invalid("the key file must hold at least 32 bytes");
  }
  return KeySource(KeySourceKind::kKeyFile, &bytes);
}

KeySource::KeySource(KeySource&& other) noexcept
    : kind_(other.kind_), secret_(std::move(other.secret_)) {
  WipeString(&other.secret_);
}

KeySource& KeySource::operator=(KeySource&& other) noexcept {
  if (this != &other) {
    WipeString(&secret_);
    kind_ = other.kind_;
    secret_ = std::move(other.secret_);
    WipeString(&other.secret_);
  }
  return *this;
}

KeySource::~KeySource() { WipeString(&secret_); }

// --- Key slots ------------------------------------------------------------------------------

Status CreateKeySlot(const std::filesystem::path& file, const KeySource& source,
                     const KdfParams& params, const std::string& archive_id, SecretKey* data_key) {
  if (archive_id.size() != kArchiveIdSize) {
    return Status::Invalid("the archive id must be 16 bytes");
  }
  struct stat st {};
  if (::lstat(file.c_str(), &st) == 0) {  // fail before spending a second on scrypt
    return Status::Exists("a key slot file already exists");
  }
  const SecretKey key = SecretKey::Random();
  KeySlot slot;
  MEDVFS_RETURN_IF_ERROR(Wrap(source, params, archive_id, key, &slot));
  MEDVFS_RETURN_IF_ERROR(PublishNewFile(file, Serialize(slot)));
  *data_key = key;
  return Status::Ok();
}

Status UnlockKeySlot(const std::filesystem::path& file, const KeySource& source,
                     SecretKey* data_key, std::string* archive_id) {
  KeySlot slot;
  MEDVFS_RETURN_IF_ERROR(ReadSlot(file, &slot));
  SecretKey key;
  MEDVFS_RETURN_IF_ERROR(Unwrap(slot, source, &key));
  *data_key = key;
  if (archive_id != nullptr) *archive_id = slot.archive_id;
  return Status::Ok();
}

Status RewrapKeySlot(const std::filesystem::path& file, const KeySource& old_source,
                     const KeySource& new_source, const KdfParams& params) {
  UniqueFd lock(-1);
  MEDVFS_RETURN_IF_ERROR(LockSlotDirectory(file, &lock));
  KeySlot slot;
  MEDVFS_RETURN_IF_ERROR(ReadSlot(file, &slot));
  SecretKey key;
  MEDVFS_RETURN_IF_ERROR(Unwrap(slot, old_source, &key));
  KeySlot fresh;
  MEDVFS_RETURN_IF_ERROR(Wrap(new_source, params, slot.archive_id, key, &fresh));
  return ReplaceFile(file, Serialize(fresh));
}

}  // namespace medvfs::store
