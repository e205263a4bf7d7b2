# Included by .ci/tsan (cmake -DCMAKE_PROJECT_INCLUDE=...), for the ThreadSanitizer tree only:
# links Debian's shared librocksdb.so instead of its static librocksdb.a, so that
# tests/tsan.supp can name the library (called_from_lib:librocksdb.so). RocksDB is built
# without TSan: its threads hand work over through atomics TSan cannot see, and only its libc
# calls (memcpy, memcmp, write, new) are intercepted; statically linked they would be part of
# the medvfs binary, and no suppression could tell them from medvfs's own code. Same library,
# same version: only the way it is linked differs.
find_package(RocksDB REQUIRED)
get_target_property(medvfs_rocksdb_shared RocksDB::rocksdb-shared IMPORTED_LOCATION_NONE)
if(NOT medvfs_rocksdb_shared)
  message(FATAL_ERROR "tsan: RocksDB::rocksdb-shared has no library file")
endif()
set_target_properties(RocksDB::rocksdb PROPERTIES IMPORTED_LOCATION_NONE "${medvfs_rocksdb_shared}")
message(STATUS "tsan: RocksDB linked shared: ${medvfs_rocksdb_shared}")
