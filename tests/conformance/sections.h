// The sections of medvfs_conform. Each works in a subdirectory of its own of the current
// directory (the DIR given to the program), with relative paths only, and sets the umask it
// needs.
#pragma once

#include <sys/types.h>

#include <string>

#include "tests/conformance/transcript.h"

namespace medvfs::conform {

// sections_nodes.cc
void TypesSection(Transcript& t);      // every file type, readdir d_type, fifo and device I/O
void ModesSection(Transcript& t);      // exact modes of new nodes under umasks 022 027 077 002
void OwnershipSection(Transcript& t);  // owners of new nodes, setgid directories, chown/chgrp
void NamesSection(Transcript& t);      // NAME_MAX, PATH_MAX, symlink targets, ELOOP

// sections_change.cc
void LinksSection(Transcript& t);     // link counts of files and directories, unlink, rmdir
void RenameSection(Transcript& t);    // rename rules, RENAME_NOREPLACE, RENAME_EXCHANGE
void TruncateSection(Transcript& t);  // truncate, ftruncate, O_TRUNC, holes
void ErrnoSection(Transcript& t);     // the errno of each remaining failure case

// sections_times.cc
void TimesSection(Transcript& t);  // atime, mtime, ctime updates; utimensat

// sections_access.cc
void PermissionSection(Transcript& t);  // r/w/x checks on the caller's own nodes
// Cases that need nodes of another user (sticky directories, non-owner utimensat and chmod,
// setgid cleared for a group the caller is not in): run when PrepareFixture made them.
void FixtureSection(Transcript& t);

// Run as root before the program runs as the user who owns `dir`: makes `dir`/fixture with
// nodes owned by root, by `peer_uid`:`peer_gid` and by the user in the peer's group. Returns
// 0, or an errno (with a message on stderr).
int PrepareFixture(const std::string& dir, uid_t peer_uid, gid_t peer_gid);

inline constexpr const char* kFixtureDir = "fixture";

}  // namespace medvfs::conform
