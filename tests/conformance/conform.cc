// medvfs_conform: our POSIX conformance suite, for differential runs.
//
//   medvfs_conform DIR
//       Runs every section inside DIR (an existing directory, empty but for a fixture made by
//       --prepare) as the calling user, and prints the transcript on stdout: one line per
//       check, "section/operation: result". Run it in a plain directory and on a mount as the
//       same user: the transcripts must be equal.
//   medvfs_conform --prepare PEER_UID:PEER_GID DIR
//       As root, before a run as DIR's owner: makes DIR/fixture, nodes of root and of the peer
//       user (and one of DIR's owner in the peer's group) for the non-owner cases.
//
// Exit status: 0 when the transcript was printed (whatever it says), 2 for bad usage or a DIR
// that cannot be used.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "tests/conformance/sections.h"

namespace medvfs::conform {
namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: medvfs_conform DIR\n"
               "       medvfs_conform --prepare PEER_UID:PEER_GID DIR\n");
  return 2;
}

// True when `dir` holds nothing, or only the fixture.
bool UsableDir(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return false;
  bool usable = true;
  while (const dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != ".." && name != kFixtureDir) usable = false;
  }
  closedir(d);
  return usable;
}

int Run(const std::string& dir) {
  if (!UsableDir(dir) || chdir(dir.c_str()) != 0) {
    std::fprintf(stderr, "medvfs_conform: %s must be an existing directory, empty but for %s\n",
                 dir.c_str(), kFixtureDir);
    return 2;
  }
  Transcript t(Identity::OfThisProcess());
  t.Section("run");
  t.Rec("caller", t.id().root() ? "root" : "not root");
  t.Rec("second group", t.id().SecondGroup() ? "yes" : "no");
  TypesSection(t);
  ModesSection(t);
  OwnershipSection(t);
  NamesSection(t);
  LinksSection(t);
  RenameSection(t);
  TruncateSection(t);
  ErrnoSection(t);
  TimesSection(t);
  PermissionSection(t);
  FixtureSection(t);
  t.Section("run");
  t.Rec("end", "ok");
  std::cout.flush();
  return 0;
}

}  // namespace
}  // namespace medvfs::conform

int main(int argc, char** argv) {
  using namespace medvfs::conform;
  if (argc == 2 && argv[1][0] != '-') return Run(argv[1]);
  if (argc == 4 && std::strcmp(argv[1], "--prepare") == 0) {
    unsigned peer_uid = 0;
    unsigned peer_gid = 0;
    if (std::sscanf(argv[2], "%u:%u", &peer_uid, &peer_gid) != 2) return Usage();
    if (geteuid() != 0) {
      std::fprintf(stderr, "medvfs_conform: --prepare needs root\n");
      return 2;
    }
    umask(0);
    return PrepareFixture(argv[3], peer_uid, peer_gid) == 0 ? 0 : 2;
  }
  return Usage();
}
