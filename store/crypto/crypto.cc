#include "store/crypto/crypto.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <utility>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "store/log.h"

namespace medvfs::store {
namespace {

using KeyArray = std::array<uint8_t, kKeySize>;

// OpenSSL takes int lengths; longer inputs go through in slices of this size.
constexpr size_t kMaxSlice = size_t{1} << 30;

// scrypt may use at most this much memory (N = 2^20, r = 8 needs 1 GiB + 2 KiB).
constexpr uint64_t kScryptMaxMemory = (uint64_t{1} << 30) + (uint64_t{1} << 20);

// For calls that cannot fail short of a broken OpenSSL or an exhausted heap, and whose
// callers have no Status to receive the failure: stop rather than continue without a key.
void CheckOpenSsl(bool ok, const char* what) {
  if (ok) return;
  MEDVFS_LOG_ERROR("OpenSSL failure in %s; aborting", what);
  std::abort();
}

const unsigned char* Bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// --- Key memory ---------------------------------------------------------------------------

// OpenSSL's secure heap for keys: 32 KiB (fits the 64 KiB RLIMIT_MEMLOCK that older kernels
// give unprivileged users), in blocks of at least 32 bytes, so one key per block.
constexpr size_t kSecureHeapSize = size_t{32} << 10;
constexpr size_t kSecureHeapMinBlock = 32;
static_assert(kKeySize == kSecureHeapMinBlock);
// OpenSSL keeps its own copies of HMAC keys in the same heap and fails the HMAC (which we turn
// into an abort) when it is full: our keys take at most half of it, then the fallback.
constexpr size_t kSecureHeapKeyShare = kSecureHeapSize / 2;

std::atomic<bool> g_force_fallback{false};

// Sets up the secure heap once per process. CRYPTO_secure_malloc_init returns 1 when the
// arena has its guard pages, is mlock()ed and excluded from core dumps, 2 when one of those
// failed (typically mlock under a low RLIMIT_MEMLOCK) and 0 when there is no arena at all. A
// half-protected arena is given back: the fallback locks page by page, which a low limit may
// still allow.
bool SecureHeapReady() {
  static const bool ready = [] {
    const int result = CRYPTO_secure_malloc_init(kSecureHeapSize, kSecureHeapMinBlock);
    if (result == 1) return true;
    if (result == 2) (void)CRYPTO_secure_malloc_done();
    MEDVFS_LOG_INFO(
        "OpenSSL's secure heap is unavailable (RLIMIT_MEMLOCK too low?); keys "
        "are locked page by page where possible");
    return false;
  }();
  return ready;
}

size_t PageSize() {
  static const size_t page = [] {
    long value = sysconf(_SC_PAGESIZE);
    return value > 0 ? static_cast<size_t>(value) : size_t{4096};
  }();
  return page;
}

// The fallback: one page per key. Page alignment lets us exclude it from core dumps, and no
// other data shares the locked page.
KeyArray* AllocateKeyPage() {
  const size_t page = PageSize();
  void* block = nullptr;
  if (posix_memalign(&block, page, page) != 0 || block == nullptr) {
    MEDVFS_LOG_ERROR("cannot allocate memory for a key; aborting");
    std::abort();
  }
  // Best effort: without RLIMIT_MEMLOCK room or MADV_DONTDUMP the key still works.
  (void)mlock(block, page);
#ifdef MADV_DONTDUMP
  (void)madvise(block, page, MADV_DONTDUMP);
#endif
  return new (block) KeyArray{};
}

KeyArray* AllocateKey() {
  if (!g_force_fallback.load(std::memory_order_relaxed) && SecureHeapReady() &&
      CRYPTO_secure_used() + kKeySize <= kSecureHeapKeyShare) {
    void* block = CRYPTO_secure_zalloc(sizeof(KeyArray), OPENSSL_FILE, OPENSSL_LINE);
    if (block != nullptr) return new (block) KeyArray{};
  }
  return AllocateKeyPage();
}

void FreeKey(KeyArray* key) {
  if (key == nullptr) return;
  OPENSSL_cleanse(key, sizeof(*key));
  key->~KeyArray();
  if (CRYPTO_secure_allocated(key) != 0) {
    CRYPTO_secure_clear_free(key, sizeof(KeyArray), OPENSSL_FILE, OPENSSL_LINE);
    return;
  }
  const size_t page = PageSize();
  (void)munlock(key, page);
#ifdef MADV_DODUMP
  (void)madvise(key, page, MADV_DODUMP);
#endif
  std::free(key);
}

// --- AES-GCM --------------------------------------------------------------------------------

struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

Status CheckGcmArgs(std::span<const uint8_t> key, std::span<const uint8_t> iv) {
  if (key.size() != kKeySize) return Status::Invalid("AES-256-GCM needs a 32-byte key");
  if (iv.empty() || iv.size() > static_cast<size_t>(INT_MAX)) {
    return Status::Invalid("AES-GCM nonce length is invalid");
  }
  return Status::Ok();
}

// Sets up ctx for AES-256-GCM in direction `encrypt` (1 or 0) and feeds the AAD.
Status InitGcm(EVP_CIPHER_CTX* ctx, int encrypt, std::span<const uint8_t> key,
               std::span<const uint8_t> iv, std::string_view aad) {
  // Fetched once: EVP_aes_256_gcm() makes OpenSSL 3 look the algorithm up again per call.
  static EVP_CIPHER* const kAes256Gcm = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  if (kAes256Gcm == nullptr ||
      EVP_CipherInit_ex(ctx, kAes256Gcm, nullptr, nullptr, nullptr, encrypt) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(iv.size()), nullptr) != 1 ||
      EVP_CipherInit_ex(ctx, nullptr, nullptr, key.data(), iv.data(), encrypt) != 1) {
    return Status::IoError("AES-GCM initialisation failed");
  }
  int out_len = 0;
  for (size_t pos = 0; pos < aad.size(); pos += kMaxSlice) {
    const size_t n = std::min(kMaxSlice, aad.size() - pos);
    if (EVP_CipherUpdate(ctx, nullptr, &out_len, Bytes(aad) + pos, static_cast<int>(n)) != 1) {
      return Status::IoError("AES-GCM failed on additional data");
    }
  }
  return Status::Ok();
}

// Runs `in` through ctx into `out` (same size; GCM is a stream mode).
bool CipherUpdate(EVP_CIPHER_CTX* ctx, std::string_view in, unsigned char* out) {
  for (size_t pos = 0; pos < in.size(); pos += kMaxSlice) {
    const size_t n = std::min(kMaxSlice, in.size() - pos);
    int out_len = 0;
    if (EVP_CipherUpdate(ctx, out + pos, &out_len, Bytes(in) + pos, static_cast<int>(n)) != 1 ||
        static_cast<size_t>(out_len) != n) {
      return false;
    }
  }
  return true;
}

// Encrypts `plaintext` into `out` (plaintext.size() bytes) and writes the tag to `tag`.
Status EncryptInto(std::span<const uint8_t> key, std::span<const uint8_t> iv, std::string_view aad,
                   std::string_view plaintext, unsigned char* out, uint8_t* tag) {
  MEDVFS_RETURN_IF_ERROR(CheckGcmArgs(key, iv));
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return Status::IoError("cannot allocate a cipher context");
  MEDVFS_RETURN_IF_ERROR(InitGcm(ctx.get(), 1, key, iv, aad));
  unsigned char final_block[16];  // GCM writes nothing here, but never hand OpenSSL null
  int final_len = 0;
  if (!CipherUpdate(ctx.get(), plaintext, out) ||
      EVP_EncryptFinal_ex(ctx.get(), final_block, &final_len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagSize), tag) != 1) {
    return Status::IoError("AES-GCM encryption failed");
  }
  return Status::Ok();
}

// --- HKDF -----------------------------------------------------------------------------------

void Hkdf(std::string_view ikm, std::string_view salt, std::string_view info, uint8_t* out,
          size_t out_len) {
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  CheckOpenSsl(kdf != nullptr, "EVP_KDF_fetch(HKDF)");
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  EVP_KDF_free(kdf);
  CheckOpenSsl(ctx != nullptr, "EVP_KDF_CTX_new");

  char digest[] = "SHA256";
  // OpenSSL refuses a missing key; an empty one is legal HKDF input.
  unsigned char empty = 0;
  OSSL_PARAM params[5];
  size_t n = 0;
  params[n++] = OSSL_PARAM_construct_utf8_string("digest", digest, 0);
  params[n++] = OSSL_PARAM_construct_octet_string(
      "key", ikm.empty() ? &empty : const_cast<unsigned char*>(Bytes(ikm)), ikm.size());
  if (!salt.empty()) {
    params[n++] = OSSL_PARAM_construct_octet_string("salt", const_cast<unsigned char*>(Bytes(salt)),
                                                    salt.size());
  }
  if (!info.empty()) {
    params[n++] = OSSL_PARAM_construct_octet_string("info", const_cast<unsigned char*>(Bytes(info)),
                                                    info.size());
  }
  params[n] = OSSL_PARAM_construct_end();
  const int ok = EVP_KDF_derive(ctx, out, out_len, params);
  EVP_KDF_CTX_free(ctx);
  CheckOpenSsl(ok == 1, "HKDF derive");
}

}  // namespace

// --- SecretKey ------------------------------------------------------------------------------

SecretKey::SecretKey() : bytes_(AllocateKey()) {}

SecretKey::SecretKey(const SecretKey& other) : bytes_(AllocateKey()) { *bytes_ = *other.bytes_; }

SecretKey& SecretKey::operator=(const SecretKey& other) {
  if (this != &other) *bytes_ = *other.bytes_;
  return *this;
}

SecretKey::~SecretKey() { FreeKey(bytes_); }

KeyMemory SecretKey::memory() const {
  return CRYPTO_secure_allocated(bytes_) != 0 ? KeyMemory::kSecureHeap : KeyMemory::kOwnPage;
}

bool SecretKey::SecureHeapAvailable() { return SecureHeapReady(); }

void SecretKey::ForceFallbackForTesting(bool force) {
  g_force_fallback.store(force, std::memory_order_relaxed);
}

SecretKey SecretKey::Random() {
  SecretKey key;
  RandomBytes(std::span<uint8_t>(key.bytes_->data(), kKeySize));
  return key;
}

SecretKey SecretKey::FromBytes(std::span<const uint8_t> bytes) {
  SecretKey key;
  if (bytes.size() != kKeySize) {
    MEDVFS_LOG_ERROR("SecretKey::FromBytes given %zu bytes, not %zu; aborting", bytes.size(),
                     kKeySize);
    std::abort();
  }
  std::memcpy(key.bytes_->data(), bytes.data(), kKeySize);
  return key;
}

// --- AEAD -----------------------------------------------------------------------------------

Status AesGcmEncrypt(std::span<const uint8_t> key, std::span<const uint8_t> iv,
                     std::string_view aad, std::string_view plaintext, std::string* ciphertext,
                     std::array<uint8_t, kTagSize>* tag) {
  ciphertext->resize(plaintext.size());
  Status status = EncryptInto(key, iv, aad, plaintext,
                              reinterpret_cast<unsigned char*>(ciphertext->data()), tag->data());
  if (!status.ok()) ciphertext->clear();
  return status;
}

Status AesGcmDecrypt(std::span<const uint8_t> key, std::span<const uint8_t> iv,
                     std::string_view aad, std::string_view ciphertext,
                     const std::array<uint8_t, kTagSize>& tag, std::string* plaintext) {
  MEDVFS_RETURN_IF_ERROR(CheckGcmArgs(key, iv));
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return Status::IoError("cannot allocate a cipher context");
  MEDVFS_RETURN_IF_ERROR(InitGcm(ctx.get(), 0, key, iv, aad));
  plaintext->resize(ciphertext.size());
  std::array<uint8_t, kTagSize> expected_tag = tag;
  unsigned char final_block[16];
  int final_len = 0;
  const bool ok =
      CipherUpdate(ctx.get(), ciphertext, reinterpret_cast<unsigned char*>(plaintext->data())) &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagSize),
                          expected_tag.data()) == 1 &&
      EVP_DecryptFinal_ex(ctx.get(), final_block, &final_len) == 1;
  if (!ok) {
    // Unauthenticated plaintext must never reach the caller.
    Wipe(plaintext->data(), plaintext->size());
    plaintext->clear();
    return Status::Corruption("authentication failed");
  }
  return Status::Ok();
}

Status Seal(const SecretKey& key, std::string_view aad, std::string_view plaintext,
            std::string* out) {
  const size_t start = out->size();
  out->resize(start + kSealOverhead + plaintext.size());
  auto* nonce = reinterpret_cast<unsigned char*>(out->data() + start);
  RandomBytes(std::span<uint8_t>(nonce, kNonceSize));
  Status status = EncryptInto(key.bytes(), std::span<const uint8_t>(nonce, kNonceSize), aad,
                              plaintext, nonce + kNonceSize, nonce + kNonceSize + plaintext.size());
  if (!status.ok()) out->resize(start);
  return status;
}

Status Unseal(const SecretKey& key, std::string_view aad, std::string_view sealed,
              std::string* plaintext) {
  if (sealed.size() < kSealOverhead) {
    plaintext->clear();
    return Status::Corruption("authentication failed");
  }
  const auto* bytes = Bytes(sealed);
  std::span<const uint8_t> nonce(bytes, kNonceSize);
  std::string_view ciphertext = sealed.substr(kNonceSize, sealed.size() - kSealOverhead);
  std::array<uint8_t, kTagSize> tag{};
  std::memcpy(tag.data(), bytes + sealed.size() - kTagSize, kTagSize);
  return AesGcmDecrypt(key.bytes(), nonce, aad, ciphertext, tag, plaintext);
}

// --- Hashes ---------------------------------------------------------------------------------

Sha256::Sha256() : ctx_(nullptr) { Reset(); }

Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

Sha256::Sha256(Sha256&& other) noexcept : ctx_(std::exchange(other.ctx_, nullptr)) {}

Sha256& Sha256::operator=(Sha256&& other) noexcept {
  if (this != &other) {
    EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_));
    ctx_ = std::exchange(other.ctx_, nullptr);
  }
  return *this;
}

void Sha256::Update(std::string_view data) {
  CheckOpenSsl(ctx_ != nullptr, "Sha256::Update on a moved-from object");
  CheckOpenSsl(EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data.data(), data.size()) == 1,
               "EVP_DigestUpdate");
}

std::array<uint8_t, 32> Sha256::Finish() {
  CheckOpenSsl(ctx_ != nullptr, "Sha256::Finish on a moved-from object");
  std::array<uint8_t, 32> digest{};
  unsigned int len = 0;
  CheckOpenSsl(EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), digest.data(), &len) == 1 &&
                   len == digest.size(),
               "EVP_DigestFinal_ex");
  return digest;
}

void Sha256::Reset() {
  if (ctx_ == nullptr) {
    ctx_ = EVP_MD_CTX_new();
    CheckOpenSsl(ctx_ != nullptr, "EVP_MD_CTX_new");
  }
  CheckOpenSsl(EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr) == 1,
               "EVP_DigestInit_ex");
}

std::array<uint8_t, 32> Sha256Of(std::string_view data) {
  Sha256 hash;
  hash.Update(data);
  return hash.Finish();
}

std::array<uint8_t, 32> HmacSha256(const SecretKey& key, std::string_view data) {
  std::array<uint8_t, 32> mac{};
  unsigned int len = 0;
  const unsigned char* result = HMAC(EVP_sha256(), key.data(), static_cast<int>(kKeySize),
                                     Bytes(data), data.size(), mac.data(), &len);
  CheckOpenSsl(result != nullptr && len == mac.size(), "HMAC");
  return mac;
}

KeyedHmacSha256::KeyedHmacSha256(const SecretKey& key) {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  CheckOpenSsl(mac != nullptr, "EVP_MAC_fetch(HMAC)");
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
  EVP_MAC_free(mac);
  CheckOpenSsl(ctx != nullptr, "EVP_MAC_CTX_new");
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0),
                               OSSL_PARAM_construct_end()};
  CheckOpenSsl(EVP_MAC_init(ctx, key.data(), kKeySize, params) == 1, "EVP_MAC_init");
  keyed_ = ctx;
}

KeyedHmacSha256::~KeyedHmacSha256() { EVP_MAC_CTX_free(static_cast<EVP_MAC_CTX*>(keyed_)); }

std::array<uint8_t, 32> KeyedHmacSha256::Mac(std::string_view data) const {
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_dup(static_cast<const EVP_MAC_CTX*>(keyed_));
  CheckOpenSsl(ctx != nullptr, "EVP_MAC_CTX_dup");
  std::array<uint8_t, 32> mac{};
  size_t len = 0;
  const bool ok = EVP_MAC_update(ctx, Bytes(data), data.size()) == 1 &&
                  EVP_MAC_final(ctx, mac.data(), &len, mac.size()) == 1 && len == mac.size();
  EVP_MAC_CTX_free(ctx);
  CheckOpenSsl(ok, "HMAC");
  return mac;
}

// --- Key derivation -------------------------------------------------------------------------

SecretKey DeriveSubkey(const SecretKey& master, std::string_view label) {
  SecretKey key;
  Hkdf(std::string_view(reinterpret_cast<const char*>(master.data()), kKeySize), {}, label,
       key.mutable_data(), kKeySize);
  return key;
}

SecretKey DeriveKeyFromBytes(std::string_view ikm, std::string_view salt, std::string_view info) {
  SecretKey key;
  Hkdf(ikm, salt, info, key.mutable_data(), kKeySize);
  return key;
}

Status DeriveKeyScrypt(std::string_view passphrase, std::string_view salt, uint64_t n, uint32_t r,
                       uint32_t p, SecretKey* out) {
  if (n < 2 || (n & (n - 1)) != 0) {
    return Status::Invalid("scrypt N must be a power of two greater than 1");
  }
  if (r == 0 || p == 0) return Status::Invalid("scrypt r and p must be positive");
  // OpenSSL's own accounting: B = 128 r p bytes, V = 128 r (N + 2) bytes.
  const uint64_t per_r = kScryptMaxMemory / 128 / r;
  if (n > per_r || n + 2 > per_r || p > per_r - (n + 2)) {
    return Status::Invalid("scrypt parameters need more than 1 GiB of memory");
  }
  if (EVP_PBE_scrypt(passphrase.data(), passphrase.size(), Bytes(salt), salt.size(), n, r, p,
                     kScryptMaxMemory, out->mutable_data(), kKeySize) != 1) {
    Wipe(out->mutable_data(), kKeySize);
    return Status::Invalid("scrypt refused its parameters or ran out of memory");
  }
  return Status::Ok();
}

// --- Utilities ------------------------------------------------------------------------------

void RandomBytes(std::span<uint8_t> buf) {
  for (size_t pos = 0; pos < buf.size(); pos += kMaxSlice) {
    const size_t n = std::min(kMaxSlice, buf.size() - pos);
    CheckOpenSsl(RAND_bytes(buf.data() + pos, static_cast<int>(n)) == 1, "RAND_bytes");
  }
}

}  // namespace medvfs::store
