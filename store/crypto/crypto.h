// Crypto primitives over OpenSSL, with no OpenSSL type in sight. Every sealed value is
//   nonce (12 bytes, random) || ciphertext || tag (16 bytes)
// and the additional data binds it to what it is (record kind and id), so that ciphertexts
// cannot be swapped between keys without failing authentication.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "store/bytes.h"
#include "store/status.h"

namespace medvfs::store {

inline constexpr size_t kKeySize = 32;
inline constexpr size_t kNonceSize = 12;
inline constexpr size_t kTagSize = 16;
inline constexpr size_t kSealOverhead = kNonceSize + kTagSize;

// Where the bytes of a SecretKey live.
enum class KeyMemory : uint8_t {
  // OpenSSL's secure heap: an mmap()ed arena with guard pages, mlock()ed and excluded from
  // core dumps (MADV_DONTDUMP). Used when the arena could be set up with all of that.
  kSecureHeap = 1,
  // A page of its own, mlock()ed and MADV_DONTDUMP where the limits allow (best effort): the
  // fallback when the secure heap is unavailable (RLIMIT_MEMLOCK too low) or half full.
  kOwnPage = 2,
};

// A 256-bit secret key. Locked in memory where possible, excluded from core dumps, and wiped
// on destruction (see KeyMemory). Memory locks are not inherited by fork(): a key allocated
// before fork() is not locked in the child.
class SecretKey {
 public:
  SecretKey();  // all zero
  SecretKey(const SecretKey& other);
  SecretKey& operator=(const SecretKey& other);
  ~SecretKey();
  // A fresh random key from the OS's CSPRNG.
  static SecretKey Random();
  // REQUIRES: bytes.size() == kKeySize
  static SecretKey FromBytes(std::span<const uint8_t> bytes);
  const uint8_t* data() const { return bytes_->data(); }
  std::span<const uint8_t> bytes() const { return *bytes_; }
  uint8_t* mutable_data() { return bytes_->data(); }
  KeyMemory memory() const;

  // Whether OpenSSL's secure heap is set up for keys in this process (it is set up on first
  // use; false when it could not be protected, see KeyMemory::kSecureHeap).
  static bool SecureHeapAvailable();
  // For tests: new keys take the fallback path as if the secure heap were unavailable.
  // Keys that exist keep their memory. Default: false.
  static void ForceFallbackForTesting(bool force);

 private:
  // Never moves, so that the locked, undumpable memory it points to stays the only copy.
  std::array<uint8_t, kKeySize>* bytes_;
};

// Seals plaintext with AES-256-GCM under a random nonce; appends nonce||ct||tag to *out.
Status Seal(const SecretKey& key, std::string_view aad, std::string_view plaintext,
            std::string* out);
// Opens a sealed value; kCorruption if authentication fails or the input is too short.
// Replaces *plaintext.
Status Unseal(const SecretKey& key, std::string_view aad, std::string_view sealed,
              std::string* plaintext);

// Raw AES-256-GCM with an explicit nonce (for known-answer tests). iv may be any length > 0.
Status AesGcmEncrypt(std::span<const uint8_t> key, std::span<const uint8_t> iv,
                     std::string_view aad, std::string_view plaintext, std::string* ciphertext,
                     std::array<uint8_t, kTagSize>* tag);
Status AesGcmDecrypt(std::span<const uint8_t> key, std::span<const uint8_t> iv,
                     std::string_view aad, std::string_view ciphertext,
                     const std::array<uint8_t, kTagSize>& tag, std::string* plaintext);

// Streaming SHA-256.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  // Movable, so that it can live in movable objects. A moved-from Sha256 may be destroyed,
  // assigned to, or Reset() before further use.
  Sha256(Sha256&& other) noexcept;
  Sha256& operator=(Sha256&& other) noexcept;
  void Update(std::string_view data);
  std::array<uint8_t, 32> Finish();  // the object may not be updated afterwards
  void Reset();

 private:
  void* ctx_;  // EVP_MD_CTX
};
std::array<uint8_t, 32> Sha256Of(std::string_view data);

// HMAC-SHA-256.
std::array<uint8_t, 32> HmacSha256(const SecretKey& key, std::string_view data);

// HMAC-SHA-256 under one key, for many messages: the algorithm is looked up and the key set
// once (HmacSha256 does both per call, a third of the cost of a 64 KiB message). Mac may be
// called from several threads at once.
class KeyedHmacSha256 {
 public:
  explicit KeyedHmacSha256(const SecretKey& key);
  ~KeyedHmacSha256();
  KeyedHmacSha256(const KeyedHmacSha256&) = delete;
  KeyedHmacSha256& operator=(const KeyedHmacSha256&) = delete;
  std::array<uint8_t, 32> Mac(std::string_view data) const;

 private:
  void* keyed_;  // EVP_MAC_CTX with the key set: duplicated for each message, never changed
};

// HKDF-SHA-256: a subkey of `master` for one purpose, named by `label`.
SecretKey DeriveSubkey(const SecretKey& master, std::string_view label);
// HKDF-SHA-256 over arbitrary input key material (a key file's bytes).
SecretKey DeriveKeyFromBytes(std::string_view ikm, std::string_view salt, std::string_view info);

// scrypt (RFC 7914) through OpenSSL.
Status DeriveKeyScrypt(std::string_view passphrase, std::string_view salt, uint64_t n, uint32_t r,
                       uint32_t p, SecretKey* out);

// Fills buf with bytes from the OS's CSPRNG.
void RandomBytes(std::span<uint8_t> buf);

}  // namespace medvfs::store
