#include "store/crypto/crypto.h"

#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "tests/store/test_util.h"

namespace medvfs::store {
namespace {

std::string Unhex(std::string_view hex) {
  StatusOr<std::string> bytes = HexDecode(hex);
  EXPECT_OK(bytes);
  return bytes.ok() ? bytes.value() : std::string();
}

std::span<const uint8_t> AsBytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string Hex(std::string_view s) {
  return HexEncode({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
}

// --- AES-256-GCM known answers: McGrew & Viega, "The Galois/Counter Mode of Operation",
// test cases 13-16 (the AES-256 cases of the GCM specification, also in NIST's GCM vectors).

struct GcmVector {
  const char* name;
  const char* key;
  const char* iv;
  const char* aad;
  const char* plaintext;
  const char* ciphertext;
  const char* tag;
};

constexpr char kKey15[] = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
constexpr char kIv15[] = "cafebabefacedbaddecaf888";
constexpr char kPlain64[] =
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
constexpr char kCipher64[] =
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad";

const GcmVector kGcmVectors[] = {
    {"case13", "0000000000000000000000000000000000000000000000000000000000000000",
     "000000000000000000000000", "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
    {"case14", "0000000000000000000000000000000000000000000000000000000000000000",
     "000000000000000000000000", "", "00000000000000000000000000000000",
     "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"},
    {"case15", kKey15, kIv15, "", kPlain64, kCipher64, "b094dac5d93471bdec1a502270e3cc6c"},
    // 60-byte plaintext with additional data.
    {"case16", kKey15, kIv15, "feedfacedeadbeeffeedfacedeadbeefabaddad2",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
};

std::array<uint8_t, kTagSize> TagFromHex(std::string_view hex) {
  std::string bytes = Unhex(hex);
  std::array<uint8_t, kTagSize> tag{};
  EXPECT_EQ(bytes.size(), kTagSize);
  std::copy_n(bytes.begin(), std::min(bytes.size(), kTagSize), tag.begin());
  return tag;
}

TEST(AesGcmTest, EncryptMatchesKnownAnswers) {
  for (const GcmVector& v : kGcmVectors) {
    SCOPED_TRACE(v.name);
    std::string key = Unhex(v.key);
    std::string iv = Unhex(v.iv);
    std::string ciphertext;
    std::array<uint8_t, kTagSize> tag{};
    ASSERT_OK(AesGcmEncrypt(AsBytes(key), AsBytes(iv), Unhex(v.aad), Unhex(v.plaintext),
                            &ciphertext, &tag));
    EXPECT_EQ(Hex(ciphertext), v.ciphertext);
    EXPECT_EQ(HexEncode(tag), v.tag);
  }
}

TEST(AesGcmTest, DecryptMatchesKnownAnswers) {
  for (const GcmVector& v : kGcmVectors) {
    SCOPED_TRACE(v.name);
    std::string key = Unhex(v.key);
    std::string iv = Unhex(v.iv);
    std::string plaintext = "stale";
    ASSERT_OK(AesGcmDecrypt(AsBytes(key), AsBytes(iv), Unhex(v.aad), Unhex(v.ciphertext),
                            TagFromHex(v.tag), &plaintext));
    EXPECT_EQ(Hex(plaintext), v.plaintext);
  }
}

TEST(AesGcmTest, DecryptRefusesEveryChangedBit) {
  const GcmVector& v = kGcmVectors[3];
  const std::string key = Unhex(v.key);
  const std::string iv = Unhex(v.iv);
  const std::string aad = Unhex(v.aad);
  const std::string ciphertext = Unhex(v.ciphertext);
  const std::array<uint8_t, kTagSize> tag = TagFromHex(v.tag);
  auto expect_refused = [&](std::string k, std::string n, std::string a, std::string c,
                            std::array<uint8_t, kTagSize> t) {
    std::string plaintext;
    Status status = AesGcmDecrypt(AsBytes(k), AsBytes(n), a, c, t, &plaintext);
    EXPECT_EQ(status.code(), Code::kCorruption) << status.ToString();
    EXPECT_TRUE(plaintext.empty()) << "unauthenticated plaintext leaked";
  };
  for (size_t bit : {size_t{0}, size_t{7}, size_t{100}, ciphertext.size() * 8 - 1}) {
    std::string c = ciphertext;
    c[bit / 8] = static_cast<char>(c[bit / 8] ^ (1 << (bit % 8)));
    expect_refused(key, iv, aad, c, tag);
  }
  std::array<uint8_t, kTagSize> t = tag;
  t[15] ^= 0x80;
  expect_refused(key, iv, aad, ciphertext, t);
  std::string n = iv;
  n[0] = static_cast<char>(n[0] ^ 1);
  expect_refused(key, n, aad, ciphertext, tag);
  std::string a = aad;
  a[5] = static_cast<char>(a[5] ^ 4);
  expect_refused(key, iv, a, ciphertext, tag);
  expect_refused(key, iv, "", ciphertext, tag);
  std::string k = key;
  k[31] = static_cast<char>(k[31] ^ 1);
  expect_refused(k, iv, aad, ciphertext, tag);
}

TEST(AesGcmTest, RejectsWrongKeyAndNonceSizes) {
  std::string ciphertext;
  std::array<uint8_t, kTagSize> tag{};
  std::string short_key(16, 'k');
  std::string iv(12, 'n');
  EXPECT_EQ(AesGcmEncrypt(AsBytes(short_key), AsBytes(iv), "", "x", &ciphertext, &tag).code(),
            Code::kInvalid);
  std::string key(32, 'k');
  EXPECT_EQ(AesGcmEncrypt(AsBytes(key), {}, "", "x", &ciphertext, &tag).code(), Code::kInvalid);
}

// --- Seal / Unseal

TEST(SealTest, RoundTripsAndAppends) {
  SecretKey key = SecretKey::Random();
  std::string sealed = "prefix";
  ASSERT_OK(Seal(key, "record:1", "hello, world", &sealed));
  ASSERT_EQ(sealed.size(), 6 + kSealOverhead + 12);
  EXPECT_EQ(sealed.substr(0, 6), "prefix");
  std::string plaintext = "old contents that must be replaced";
  ASSERT_OK(Unseal(key, "record:1", std::string_view(sealed).substr(6), &plaintext));
  EXPECT_EQ(plaintext, "hello, world");
}

TEST(SealTest, EmptyPlaintext) {
  SecretKey key = SecretKey::Random();
  std::string sealed;
  ASSERT_OK(Seal(key, "", "", &sealed));
  EXPECT_EQ(sealed.size(), kSealOverhead);
  std::string plaintext = "x";
  ASSERT_OK(Unseal(key, "", sealed, &plaintext));
  EXPECT_TRUE(plaintext.empty());
}

TEST(SealTest, NoncesAreFresh) {
  SecretKey key = SecretKey::Random();
  std::string a;
  std::string b;
  ASSERT_OK(Seal(key, "aad", "same plaintext", &a));
  ASSERT_OK(Seal(key, "aad", "same plaintext", &b));
  EXPECT_NE(a.substr(0, kNonceSize), b.substr(0, kNonceSize));
  EXPECT_NE(a, b);
}

TEST(SealTest, EveryFlippedBitIsDetected) {
  SecretKey key = SecretKey::Random();
  std::string sealed;
  ASSERT_OK(Seal(key, "inode:7 version:3", "some patient data", &sealed));
  // Every bit of nonce, ciphertext and tag.
  for (size_t bit = 0; bit < sealed.size() * 8; ++bit) {
    std::string tampered = sealed;
    tampered[bit / 8] = static_cast<char>(tampered[bit / 8] ^ (1 << (bit % 8)));
    std::string plaintext;
    Status status = Unseal(key, "inode:7 version:3", tampered, &plaintext);
    ASSERT_EQ(status.code(), Code::kCorruption) << "bit " << bit;
    EXPECT_EQ(status.message(), "authentication failed");
    EXPECT_TRUE(plaintext.empty());
  }
}

TEST(SealTest, WrongAadOrKeyIsDetected) {
  SecretKey key = SecretKey::Random();
  std::string sealed;
  ASSERT_OK(Seal(key, "inode:7 version:3", "data", &sealed));
  std::string plaintext;
  EXPECT_EQ(Unseal(key, "inode:7 version:4", sealed, &plaintext).code(), Code::kCorruption);
  EXPECT_EQ(Unseal(SecretKey::Random(), "inode:7 version:3", sealed, &plaintext).code(),
            Code::kCorruption);
}

TEST(SealTest, ShortInputIsCorruption) {
  SecretKey key = SecretKey::Random();
  std::string plaintext = "x";
  for (size_t n : {size_t{0}, size_t{1}, kSealOverhead - 1}) {
    Status status = Unseal(key, "", std::string(n, '\0'), &plaintext);
    EXPECT_EQ(status.code(), Code::kCorruption);
    EXPECT_EQ(status.message(), "authentication failed");
  }
}

// --- SecretKey

TEST(SecretKeyTest, CopiesAreIndependent) {
  SecretKey a = SecretKey::Random();
  SecretKey b = a;
  EXPECT_TRUE(std::equal(a.bytes().begin(), a.bytes().end(), b.bytes().begin()));
  EXPECT_NE(a.data(), b.data());
  b.mutable_data()[0] ^= 1;
  EXPECT_NE(a.data()[0], b.data()[0]);
  SecretKey c;
  for (uint8_t byte : c.bytes()) EXPECT_EQ(byte, 0);
  c = a;
  EXPECT_TRUE(std::equal(a.bytes().begin(), a.bytes().end(), c.bytes().begin()));
  EXPECT_EQ(a.bytes().size(), kKeySize);
}

TEST(SecretKeyTest, RandomKeysDiffer) {
  SecretKey a = SecretKey::Random();
  SecretKey b = SecretKey::Random();
  EXPECT_FALSE(std::equal(a.bytes().begin(), a.bytes().end(), b.bytes().begin()));
}

// The VmFlags of the mapping holding `address` in /proc/self/smaps (e.g. "rd wr mr mw me lo
// dd"), or "" when there is none.
std::string VmFlagsOf(const void* address) {
  const auto where = reinterpret_cast<uintptr_t>(address);
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    uintptr_t start = 0;
    uintptr_t end = 0;
    char dash = 0;
    std::istringstream header(line);
    if (header >> std::hex >> start >> dash >> end && dash == '-' &&
        line.find(':') > line.find(' ')) {
      inside = start <= where && where < end;
      continue;
    }
    if (inside && line.rfind("VmFlags:", 0) == 0) return line.substr(8);
  }
  return "";
}

bool HasFlag(const std::string& flags, const std::string& flag) {
  std::istringstream words(flags);
  std::string word;
  while (words >> word) {
    if (word == flag) return true;
  }
  return false;
}

// mlock() of a few pages succeeds: root with CAP_IPC_LOCK, or a limit of at least 1 MiB; and
// not under AddressSanitizer or ThreadSanitizer, which turn the mlock() function into a no-op
// (OpenSSL's secure heap locks its arena with the mlock2 system call, which they leave alone).
bool MlockAllowed() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return false;
#else
  struct rlimit limit {};
  if (getrlimit(RLIMIT_MEMLOCK, &limit) != 0) return false;
  return limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur >= (rlim_t{1} << 20);
#endif
}

// Restores the default allocation when a test ends, whatever happens in it.
struct ForceFallback {
  ForceFallback() { SecretKey::ForceFallbackForTesting(true); }
  ForceFallback(const ForceFallback&) = delete;
  ForceFallback& operator=(const ForceFallback&) = delete;
  ~ForceFallback() { SecretKey::ForceFallbackForTesting(false); }
};

bool SameBytes(const SecretKey& a, const SecretKey& b) {
  return std::equal(a.bytes().begin(), a.bytes().end(), b.bytes().begin());
}

TEST(SecretKeyTest, LivesInTheSecureHeapLockedAndNotDumped) {
  SecretKey key = SecretKey::Random();
  if (!SecretKey::SecureHeapAvailable()) {
    EXPECT_FALSE(MlockAllowed()) << "the secure heap should be set up when mlock is allowed";
    GTEST_FAIL() << "OpenSSL's secure heap is unavailable here (RLIMIT_MEMLOCK)";
  }
  EXPECT_EQ(key.memory(), KeyMemory::kSecureHeap);
  const std::string flags = VmFlagsOf(key.data());
  ASSERT_FALSE(flags.empty()) << "no mapping holds the key";
  EXPECT_TRUE(HasFlag(flags, "dd")) << flags;  // MADV_DONTDUMP
  EXPECT_TRUE(HasFlag(flags, "lo")) << flags;  // mlock()ed
}

TEST(SecretKeyTest, FallbackPagesAreLockedAndNotDumped) {
  ForceFallback fallback;
  SecretKey key = SecretKey::Random();
  EXPECT_EQ(key.memory(), KeyMemory::kOwnPage);
  const std::string flags = VmFlagsOf(key.data());
  ASSERT_FALSE(flags.empty()) << "no mapping holds the key";
  EXPECT_TRUE(HasFlag(flags, "dd")) << flags;
  if (MlockAllowed()) {
    EXPECT_TRUE(HasFlag(flags, "lo")) << flags;
  }
}

TEST(SecretKeyTest, CopiesBetweenSecureHeapAndFallbackKeys) {
  SecretKey secure = SecretKey::Random();
  std::unique_ptr<SecretKey> page;
  {
    ForceFallback fallback;
    page = std::make_unique<SecretKey>(secure);  // a copy made without the secure heap
    EXPECT_EQ(page->memory(), KeyMemory::kOwnPage);
    EXPECT_TRUE(SameBytes(*page, secure));
    SecretKey assigned;
    assigned = secure;
    EXPECT_TRUE(SameBytes(assigned, secure));
    EXPECT_NE(assigned.data(), secure.data());
  }
  page->mutable_data()[0] ^= 1;
  SecretKey back = *page;  // and back into the secure heap (when there is one)
  if (SecretKey::SecureHeapAvailable()) {
    EXPECT_EQ(back.memory(), KeyMemory::kSecureHeap);
  }
  EXPECT_TRUE(SameBytes(back, *page));
  EXPECT_FALSE(SameBytes(back, secure));
  secure = back;
  EXPECT_TRUE(SameBytes(secure, *page));
  // Keys of either kind work the same in the primitives.
  std::string sealed;
  ASSERT_OK(Seal(*page, "aad", "text", &sealed));
  std::string plain;
  ASSERT_OK(Unseal(back, "aad", sealed, &plain));
  EXPECT_EQ(plain, "text");
}

TEST(SecretKeyTest, ManyKeysOverflowIntoFallbackAndLeaveOpenSslItsShare) {
  // More keys than half the 32 KiB arena holds: the rest take the fallback, and OpenSSL's own
  // secure allocations (HMAC keeps a copy of its key there) still succeed.
  std::vector<SecretKey> keys(1500);
  size_t in_heap = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    keys[i].mutable_data()[0] = static_cast<uint8_t>(i);
    if (keys[i].memory() == KeyMemory::kSecureHeap) ++in_heap;
  }
  EXPECT_LT(in_heap, keys.size());
  if (SecretKey::SecureHeapAvailable()) {
    EXPECT_GT(in_heap, 0u);
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    ASSERT_EQ(keys[i].data()[0], static_cast<uint8_t>(i));
  }
  // HmacSha256 aborts if OpenSSL cannot allocate its copy of the key.
  const SecretKey last_copy = keys.back();
  EXPECT_EQ(HmacSha256(keys.back(), "data"), HmacSha256(last_copy, "data"));
  EXPECT_NE(HmacSha256(keys.front(), "data"), HmacSha256(last_copy, "data"));
  std::vector<SecretKey> more(keys.begin(), keys.begin() + 100);  // copies still work
  EXPECT_TRUE(SameBytes(more[99], keys[99]));
}

TEST(UtilTest, WipeStringWipesShortAndLongStrings) {
  std::string short_secret = "pin 1234";  // in the string object itself
  const char* short_bytes = short_secret.data();
  const size_t short_capacity = short_secret.capacity();
  WipeString(&short_secret);
  EXPECT_TRUE(short_secret.empty());
  EXPECT_EQ(short_secret.data(), short_bytes);  // the buffer stayed where it was
  EXPECT_EQ(std::string(short_bytes, short_capacity), std::string(short_capacity, '\0'));

  std::string long_secret(100, 'x');
  const char* long_bytes = long_secret.data();
  const size_t long_capacity = long_secret.capacity();
  WipeString(&long_secret);
  EXPECT_TRUE(long_secret.empty());
  EXPECT_EQ(long_secret.data(), long_bytes);
  EXPECT_EQ(std::string(long_bytes, long_capacity), std::string(long_capacity, '\0'));
}

// --- SHA-256 (FIPS 180-2 examples)

TEST(Sha256Test, KnownAnswers) {
  EXPECT_EQ(HexEncode(Sha256Of("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(HexEncode(Sha256Of("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(HexEncode(Sha256Of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256Test, StreamingMatchesOneShotAndResets) {
  Sha256 hash;
  hash.Update("a");
  hash.Update("");
  hash.Update("bc");
  EXPECT_EQ(hash.Finish(), Sha256Of("abc"));
  hash.Reset();
  EXPECT_EQ(hash.Finish(), Sha256Of(""));
}

TEST(Sha256Test, MovesCarryTheStateAndMovedFromCanBeReset) {
  Sha256 a;
  a.Update("ab");
  Sha256 b = std::move(a);
  b.Update("c");
  EXPECT_EQ(b.Finish(), Sha256Of("abc"));
  a.Reset();  // NOLINT(bugprone-use-after-move): Reset revives a moved-from object
  a.Update("abc");
  EXPECT_EQ(a.Finish(), Sha256Of("abc"));
  Sha256 c;
  c.Update("x");
  c = std::move(a);
  c.Reset();
  EXPECT_EQ(c.Finish(), Sha256Of(""));
}

// --- HMAC-SHA-256 (RFC 4231). HMAC pads a short key with zeros to the block size, so a
// 20-byte (or 4-byte) key zero-extended to 32 bytes gives the same MAC.

SecretKey ZeroExtendedKey(std::string bytes) {
  bytes.resize(kKeySize, '\0');
  return SecretKey::FromBytes(AsBytes(bytes));
}

TEST(HmacSha256Test, Rfc4231Case1) {
  EXPECT_EQ(HexEncode(HmacSha256(ZeroExtendedKey(std::string(20, '\x0b')), "Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

TEST(HmacSha256Test, Rfc4231Case2) {
  EXPECT_EQ(HexEncode(HmacSha256(ZeroExtendedKey("Jefe"), "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(KeyedHmacSha256Test, AgreesWithTheOneShotHmacFromManyThreads) {
  const SecretKey key = ZeroExtendedKey("Jefe");
  const KeyedHmacSha256 keyed(key);
  EXPECT_EQ(HexEncode(keyed.Mac("what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // Messages of every length around the block size and a large one, hashed concurrently.
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (size_t n = 0; n < 300; ++n) {
        const std::string message(n * (t + 1) + (n == 299 ? 100000 : 0), static_cast<char>(n));
        if (keyed.Mac(message) != HmacSha256(key, message)) ++mismatches;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches.load(), 0);
}

// --- HKDF-SHA-256 (RFC 5869 test case 1; our keys are the first 32 bytes of the 42-byte OKM)

TEST(HkdfTest, Rfc5869Case1) {
  SecretKey key = DeriveKeyFromBytes(std::string(22, '\x0b'), Unhex("000102030405060708090a0b0c"),
                                     Unhex("f0f1f2f3f4f5f6f7f8f9"));
  EXPECT_EQ(HexEncode(key.bytes()),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf");
}

TEST(HkdfTest, SubkeysDependOnLabelAndMaster) {
  SecretKey master = SecretKey::Random();
  SecretKey a = DeriveSubkey(master, "names");
  SecretKey a2 = DeriveSubkey(master, "names");
  SecretKey b = DeriveSubkey(master, "content");
  SecretKey c = DeriveSubkey(SecretKey::Random(), "names");
  EXPECT_EQ(HexEncode(a.bytes()), HexEncode(a2.bytes()));
  EXPECT_NE(HexEncode(a.bytes()), HexEncode(b.bytes()));
  EXPECT_NE(HexEncode(a.bytes()), HexEncode(c.bytes()));
  EXPECT_NE(HexEncode(a.bytes()), HexEncode(master.bytes()));
}

// --- scrypt (RFC 7914 section 12; our keys are the first 32 bytes of the 64-byte output)

TEST(ScryptTest, Rfc7914EmptyPassword) {
  SecretKey key;
  ASSERT_OK(DeriveKeyScrypt("", "", 16, 1, 1, &key));
  EXPECT_EQ(HexEncode(key.bytes()),
            "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442");
}

TEST(ScryptTest, Rfc7914PasswordNaCl) {
  SecretKey key;
  ASSERT_OK(DeriveKeyScrypt("password", "NaCl", 1024, 8, 16, &key));
  EXPECT_EQ(HexEncode(key.bytes()),
            "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162");
}

TEST(ScryptTest, RejectsBadParameters) {
  SecretKey key;
  EXPECT_EQ(DeriveKeyScrypt("pw", "salt", 1000, 8, 1, &key).code(), Code::kInvalid);
  EXPECT_EQ(DeriveKeyScrypt("pw", "salt", 1, 8, 1, &key).code(), Code::kInvalid);
  EXPECT_EQ(DeriveKeyScrypt("pw", "salt", 1024, 0, 1, &key).code(), Code::kInvalid);
  EXPECT_EQ(DeriveKeyScrypt("pw", "salt", 1024, 8, 0, &key).code(), Code::kInvalid);
  // 2^40 * 1 KiB: far more memory than allowed.
  EXPECT_EQ(DeriveKeyScrypt("pw", "salt", uint64_t{1} << 40, 8, 1, &key).code(), Code::kInvalid);
}

// --- Hex and utilities

TEST(HexTest, RoundTrip) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  std::string hex = Hex(all);
  EXPECT_EQ(hex.size(), 512u);
  EXPECT_EQ(hex.substr(0, 8), "00010203");
  EXPECT_EQ(hex.substr(504), "fcfdfeff");
  EXPECT_EQ(Unhex(hex), all);
  EXPECT_EQ(Unhex("DEADbeef"), "\xde\xad\xbe\xef");
  EXPECT_EQ(Hex(""), "");
  EXPECT_EQ(Unhex(""), "");
}

TEST(HexTest, RejectsInvalidInput) {
  EXPECT_EQ(HexDecode("abc").status().code(), Code::kInvalid);
  EXPECT_EQ(HexDecode("zz").status().code(), Code::kInvalid);
  EXPECT_EQ(HexDecode("0g").status().code(), Code::kInvalid);
  EXPECT_EQ(HexDecode(" 0").status().code(), Code::kInvalid);
  EXPECT_EQ(HexDecode(std::string_view("0\0", 2)).status().code(), Code::kInvalid);
}

TEST(UtilTest, WipeZeroesAndRandomFills) {
  std::string secret = "secret bytes";
  Wipe(secret.data(), secret.size());
  EXPECT_EQ(secret, std::string(12, '\0'));
  std::array<uint8_t, 64> buf{};
  RandomBytes(buf);
  EXPECT_NE(HexEncode(buf), std::string(128, '0'));
}

}  // namespace
}  // namespace medvfs::store
