// Keys: how an archive's random data key is protected at rest.
//
// The data key (32 random bytes) is stored only wrapped (AES-256-GCM) under a key-encryption
// key (KEK). The KEK comes from a passphrase through scrypt (parameters and salt stored in the
// key slot file) or from the contents of a key file through HKDF-SHA256. Changing the
// passphrase rewraps the data key; it never re-encrypts data. See man/medvfs-format.5.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "store/crypto/crypto.h"
#include "store/status.h"

namespace medvfs::store {

// The key slot file's name in an archive directory.
inline constexpr char kKeySlotFileName[] = "keyslot";

enum class KeySourceKind : uint8_t { kPassphrase = 1, kKeyFile = 2 };

// A passphrase, or the bytes of a key file. The secret is wiped when the object dies, and
// the string it was made from is wiped when the object takes it over. Callers wipe their own
// copies (WipeString in store/crypto/crypto.h).
class KeySource {
 public:
  static KeySource Passphrase(std::string passphrase);
  static KeySource KeyFileBytes(std::string bytes);
  // Reads a key file; kInvalid if it holds fewer than 32 bytes.
  static StatusOr<KeySource> FromKeyFile(const std::filesystem::path& file);

  KeySource(const KeySource& other) = default;
  KeySource& operator=(const KeySource& other) = default;
  KeySource(KeySource&& other) noexcept;
  KeySource& operator=(KeySource&& other) noexcept;
  ~KeySource();

  KeySourceKind kind() const { return kind_; }
  const std::string& secret() const { return secret_; }

 private:
  // Takes the secret from *secret and wipes what is left there.
  KeySource(KeySourceKind kind, std::string* secret);
  KeySourceKind kind_ = KeySourceKind::kPassphrase;
  std::string secret_;
};

// scrypt cost parameters. Defaults: N = 2^17, r = 8, p = 1 (128 MiB, ~0.4 s here).
struct KdfParams {
  uint64_t n = uint64_t{1} << 17;
  uint32_t r = 8;
  uint32_t p = 1;
};

// Creates the key slot file `file` (mode 0600, must not exist) for a new random data key,
// wrapped under the KEK of `source`. `archive_id` (16 bytes) is bound into the wrapping.
// REQUIRES: archive_id.size() == 16.
Status CreateKeySlot(const std::filesystem::path& file, const KeySource& source,
                     const KdfParams& params, const std::string& archive_id, SecretKey* data_key);

// Unwraps the data key. kWrongKey when the passphrase or key file does not match; kCorruption
// when the file is damaged; kNotFound when it is missing. Writes nothing.
Status UnlockKeySlot(const std::filesystem::path& file, const KeySource& source,
                     SecretKey* data_key, std::string* archive_id);

// Rewraps the data key under `new_source` (new salt, `params` for a passphrase), replacing
// the file atomically: the new slot is written to a temporary file beside it (mode 0600),
// fsync()ed, renamed over the file, and the directory is fsync()ed; a crash leaves the old or
// the new slot, and at worst a stray ".keyslot.tmp-*" file that nothing reads. The kind may
// change (passphrase <-> key file). kWrongKey when `old_source` does not unlock it; kBusy
// when another rewrap of the same slot is under way (an flock on the slot's directory).
// Writes nothing on failure. Opened archives are unaffected: they hold the data key.
Status RewrapKeySlot(const std::filesystem::path& file, const KeySource& old_source,
                     const KeySource& new_source, const KdfParams& params);

}  // namespace medvfs::store
